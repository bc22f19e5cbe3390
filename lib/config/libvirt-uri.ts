// A host's libvirt URI as virsh takes it. The provider and libvirt's own client agree on
// qemu+ssh URIs (keyfile, socket, no_verify) except for the known-hosts file: the provider
// reads `knownhosts=FILE`, while virsh's ssh transport runs OpenSSH, which takes none
// (only root's ~/.ssh/known_hosts); libvirt's libssh transport reads the file as `known_hosts`.

/** The URI virsh (readiness, the host check, `btw console`/`status`) uses for a host's URI. */
export function virshUri(uri: string): string {
  const match = /^([a-z]+)\+ssh:\/\/([^?]*)\?(.*)$/.exec(uri);
  if (!match) return uri;
  const [, driver, rest, query] = match;
  const params = new URLSearchParams(query);
  const knownHosts = params.get("knownhosts");
  if (!knownHosts || params.has("known_hosts")) return uri;
  // Appended as written (not re-encoded), so every other parameter reaches libvirt as the provider reads it.
  return `${driver}+libssh://${rest}?${query}&known_hosts=${knownHosts}`;
}
