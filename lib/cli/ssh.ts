// `btw ssh VM`: the VM's host keys as its first boot printed them on its serial
// console (cloud-init's keys_to_console), so the login checks them strictly
// instead of trusting whatever answers first.

/** The host keys of the last "SSH HOST KEY KEYS" block in a console log's text, one OpenSSH public key line each. */
export function consoleHostKeys(consoleText: string): string[] {
  const lines = consoleText.split(/\r?\n/).map((line) => line.replace(/^(ec2|ci-info):\s*/, "").trim());
  const begin = lines.lastIndexOf("-----BEGIN SSH HOST KEY KEYS-----");
  if (begin < 0) return [];
  const end = lines.indexOf("-----END SSH HOST KEY KEYS-----", begin);
  if (end < 0) return [];
  return lines
    .slice(begin + 1, end)
    .map((line) => line.split(/\s+/).slice(0, 2).join(" "))
    .filter((line) => /^(ssh-|ecdsa-)\S+ [A-Za-z0-9+/=]+$/.test(line));
}

/** known_hosts lines for ADDRESS with KEYS. */
export function knownHosts(address: string, keys: string[]): string {
  return keys.map((key) => `${address} ${key}\n`).join("");
}
