// Signed apt repositories built with Debian's own tools, for tests that need a
// third-party repository: small packages (dpkg-deb --build), the index and
// Release (apt-ftparchive), InRelease and Release.gpg signed with a throwaway
// key (gpg in its own GNUPGHOME, exported to a keyring file as apt's Signed-By
// takes it). No jest here; serve the folder with testkit/http-server.ts.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export interface StandInPackage {
  name: string;
  version: string;
  depends?: string;
  description?: string;
  /** Files the package ships: absolute path in the image -> content. */
  files?: Record<string, string>;
  /** Of `files`, those dpkg treats as conffiles. */
  conffiles?: string[];
}

export interface ThrowawayKey {
  gnupgHome: string;
  /** The public key as a binary keyring file (gpg --export), what Signed-By names. */
  keyring: string;
  fingerprint: string;
  /** Stops the gpg-agent the key's GNUPGHOME started and removes the folder. */
  release(): void;
}

/** A fresh signing key in DIR/gnupg (DIR must be short: gpg-agent's socket lives there). */
export function throwawayKey(dir: string, name: string): ThrowawayKey {
  const gnupgHome = path.join(dir, "gnupg");
  fs.mkdirSync(gnupgHome, { recursive: true, mode: 0o700 });
  const gpg = (...args: string[]) => execFileSync("gpg", ["--homedir", gnupgHome, "--batch", "--quiet", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  gpg("--passphrase", "", "--quick-gen-key", `${name} <${name}@btw-img.invalid>`, "rsa3072", "sign", "never");
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(gpg("--with-colons", "--list-keys"))?.[1];
  if (!fingerprint) throw new Error(`gpg made no key in ${gnupgHome}`);
  const keyring = path.join(dir, `${name}.gpg`);
  execFileSync("gpg", ["--homedir", gnupgHome, "--batch", "--export", "--output", keyring, fingerprint]);
  return {
    gnupgHome,
    keyring,
    fingerprint,
    release: () => {
      execFileSync("gpgconf", ["--homedir", gnupgHome, "--kill", "all"]);
      fs.rmSync(gnupgHome, { recursive: true, force: true });
    },
  };
}

/** Builds PKG as a .deb in OUTDIR with dpkg-deb; returns its path. */
export function buildPackage(pkg: StandInPackage, outDir: string): string {
  const tree = fs.mkdtempSync(path.join(outDir, `.${pkg.name}-`));
  try {
    fs.mkdirSync(path.join(tree, "DEBIAN"));
    const control = [
      `Package: ${pkg.name}`,
      `Version: ${pkg.version}`,
      "Architecture: all",
      "Maintainer: btw-img tests <tests@btw-img.invalid>",
      ...(pkg.depends ? [`Depends: ${pkg.depends}`] : []),
      `Description: ${pkg.description ?? `stand-in ${pkg.name} for btw-img's tests`}`,
    ];
    fs.writeFileSync(path.join(tree, "DEBIAN", "control"), `${control.join("\n")}\n`);
    for (const [file, content] of Object.entries(pkg.files ?? {})) {
      fs.mkdirSync(path.join(tree, path.dirname(file)), { recursive: true });
      fs.writeFileSync(path.join(tree, file), content);
    }
    if (pkg.conffiles?.length) fs.writeFileSync(path.join(tree, "DEBIAN", "conffiles"), `${pkg.conffiles.join("\n")}\n`);
    const deb = path.join(outDir, `${pkg.name}_${pkg.version}_all.deb`);
    execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", tree, deb], { stdio: ["ignore", "ignore", "pipe"] });
    return deb;
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
}

export interface RepositoryLayout {
  /** The repository's root under the served folder, e.g. "pve" for http://host/pve. */
  root: string;
  suite: string;
  component: string;
}

/**
 * Writes a repository into SERVED/root: pool/SUITE/COMPONENT/*.deb (a pool per suite, so each suite's index holds
 * only its own packages), dists/SUITE/COMPONENT/binary-amd64/Packages(.gz),
 * dists/SUITE/Release, InRelease and Release.gpg signed with KEY (none: unsigned).
 */
export function buildRepository(served: string, layout: RepositoryLayout, packages: StandInPackage[], key?: ThrowawayKey): void {
  const repo = path.join(served, layout.root);
  const poolDir = path.join("pool", layout.suite, layout.component);
  const pool = path.join(repo, poolDir);
  fs.mkdirSync(pool, { recursive: true });
  for (const pkg of packages) buildPackage(pkg, pool);
  const suiteDir = path.join(repo, "dists", layout.suite);
  const binary = path.join(suiteDir, layout.component, "binary-amd64");
  fs.mkdirSync(binary, { recursive: true });
  const index = execFileSync("apt-ftparchive", ["packages", poolDir], { cwd: repo, encoding: "utf8" });
  fs.writeFileSync(path.join(binary, "Packages"), index);
  execFileSync("gzip", ["-9kn", path.join(binary, "Packages")]);
  const option = (field: string, value: string) => ["-o", `APT::FTPArchive::Release::${field}=${value}`];
  const release = execFileSync(
    "apt-ftparchive",
    [
      ...option("Origin", "btw-img tests"),
      ...option("Suite", layout.suite),
      ...option("Codename", layout.suite),
      ...option("Components", layout.component),
      ...option("Architectures", "amd64"),
      "release",
      ".",
    ],
    { cwd: suiteDir, encoding: "utf8" },
  );
  fs.writeFileSync(path.join(suiteDir, "Release"), release);
  if (!key) return;
  const sign = (...args: string[]) =>
    execFileSync("gpg", ["--homedir", key.gnupgHome, "--batch", "--yes", "--local-user", key.fingerprint, "--digest-algo", "SHA512", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  sign("--clearsign", "--output", path.join(suiteDir, "InRelease"), path.join(suiteDir, "Release"));
  sign("--armor", "--detach-sign", "--output", path.join(suiteDir, "Release.gpg"), path.join(suiteDir, "Release"));
}

/** Proxmox VE's packages as tiny stand-ins, with Depends shaped like the real ones (PVE 9 on trixie, PVE 8 on bookworm). */
export function proxmoxStandIns(release: "trixie" | "bookworm"): StandInPackage[] {
  const pve9 = release === "trixie";
  const kernelSeries = pve9 ? "6.14" : "6.8";
  const kernelVersion = pve9 ? "6.14.8-2-pve" : "6.8.12-11-pve";
  // pve-manager brings the enterprise repository, which the profile's commands.d removes (deb822 since PVE 9).
  const enterprise: Record<string, string> = pve9
    ? {
        "/etc/apt/sources.list.d/pve-enterprise.sources":
          "Types: deb\nURIs: https://enterprise.proxmox.com/debian/pve\nSuites: trixie\nComponents: pve-enterprise\nSigned-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n",
      }
    : { "/etc/apt/sources.list.d/pve-enterprise.list": "deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n" };
  return [
    {
      name: `proxmox-kernel-${kernelSeries}`,
      version: `${kernelVersion.replace(/-pve$/, "")}`,
      files: { [`/boot/vmlinuz-${kernelVersion}`]: "stand-in kernel\n", [`/usr/lib/modules/${kernelVersion}/modules.order`]: "" },
    },
    { name: "proxmox-default-kernel", version: pve9 ? "2.0.0" : "1.1.0", depends: `proxmox-kernel-${kernelSeries}` },
    { name: "pve-manager", version: pve9 ? "9.0.3" : "8.4.1", depends: "postfix | mail-transport-agent, chrony | time-daemon", files: enterprise, conffiles: Object.keys(enterprise) },
    { name: "proxmox-ve", version: pve9 ? "9.0.0" : "8.4.0", depends: "proxmox-default-kernel, pve-manager, open-iscsi" },
  ];
}
