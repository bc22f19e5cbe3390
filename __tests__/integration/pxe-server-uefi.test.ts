// pxe-server.sh without any VM (the machine: a network namespace, helpers/namespace-machine.ts):
// what start and stop refuse and keep, and UEFI machines: Debian's signed shim and GRUB over
// TFTP, each MAC reading its own folder.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run, workDir } from "../helpers/metal-scripts";
import { namespaceMachine } from "../helpers/namespace-machine";

const work = workDir();

describe("pxe-server.sh: its folders and port; UEFI machines over TFTP", () => {
  const { ns, hostIf, address, port, base, m1, m2, stateRoot, stateDir, recordsDir, deployDir, artifactsDir, machines, start, fetch, token, hyphens } = namespaceMachine(work, "b", 98, "18297");

  test("start refuses when something else answers on the HTTP port, and leaves no daemon", async () => {
    const other = spawn("busybox", ["httpd", "-f", "-p", `${address}:18298`, "-h", work], { stdio: "ignore" });
    const otherDir = path.join(stateRoot, "other");
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const refused = run(
        "pxe-server.sh",
        ["start", "--state-dir", otherDir, "--interface", hostIf, "--address", address, "--http-port", "18298", "--deploy", `minimal=${deployDir}`, "--artifacts", `minimal=${artifactsDir}`],
        {
          PXE_MACHINES: machines([m1]),
        },
      );
      expect(refused.status).toBe(1);
      expect(refused.output).toMatch(/something else listens on port 18298 .*busybox/);
      expect(spawnSync("pgrep", ["-f", `dnsmasq --conf-file=${otherDir}`]).status).toBe(1);
    } finally {
      other.kill();
      run("pxe-server.sh", ["stop", "--state-dir", otherDir]);
    }
  });

  test("stop and start never touch a folder without the marker (state_dir / with lab etc)", () => {
    const foreign = path.join(work, "foreign", "etc");
    fs.mkdirSync(foreign, { recursive: true });
    fs.writeFileSync(path.join(foreign, "passwd"), "root:x:0:0\n");
    const stopped = run("pxe-server.sh", ["stop", "--state-dir", foreign]);
    expect(stopped.status).toBe(0);
    expect(stopped.output).toContain("is not btw-img's (no .btw-img-owned in it)");
    const started = run("pxe-server.sh", ["start", "--state-dir", foreign, "--interface", hostIf, "--address", address, "--http-port", "18299", "--deploy", `minimal=${deployDir}`], {
      PXE_MACHINES: machines([m1]),
    });
    expect(started.status).toBe(1);
    expect(started.output).toContain("exists and is not btw-img's");
    expect(fs.readdirSync(foreign)).toEqual(["passwd"]);
  });

  test("stop keeps the installs a server from before the records folder recorded", () => {
    const legacy = path.join(stateRoot, "legacy");
    fs.mkdirSync(path.join(legacy, "state"), { recursive: true });
    fs.writeFileSync(path.join(legacy, "dnsmasq.conf"), "# Written by pxe-server.sh: DHCP and TFTP on br50 only, no DNS.\n");
    fs.writeFileSync(path.join(legacy, "state", m1.mac), "done\n");
    fs.writeFileSync(path.join(legacy, "state", m2.mac), "failed\n");
    expect(run("pxe-server.sh", ["stop", "--state-dir", legacy]).status).toBe(0);
    expect(fs.existsSync(legacy)).toBe(false);
    expect(fs.readdirSync(`${legacy}.records`).sort()).toEqual([".btw-img-owned", m1.mac]);
    expect(fs.readFileSync(path.join(`${legacy}.records`, m1.mac), "utf8")).toBe("done\n");
  });

  test("UEFI machines get the image's signed shim and GRUB over TFTP; GRUB reads its MAC's own folder, in its own language", () => {
    const signed = path.join(work, "deploy-signed");
    fs.mkdirSync(signed);
    fs.writeFileSync(path.join(signed, "vmlinuz"), "stand-in for the kernel");
    fs.writeFileSync(path.join(signed, "initramfs.img"), "stand-in for the initramfs");
    fs.writeFileSync(path.join(signed, "tools.img"), "stand-in for tools");
    fs.writeFileSync(path.join(signed, "shimx64.efi"), "stand-in for shim");
    fs.writeFileSync(path.join(signed, "grubx64.efi"), "stand-in for grub");
    /** GRUB's own parser (grub-common) on a script. */
    const grubSyntax = (script: string) => {
      const file = path.join(work, "check.cfg");
      fs.writeFileSync(file, script);
      return spawnSync("grub-script-check", [file], { encoding: "utf8" }).status;
    };
    /** A file over TFTP, as GRUB asks for it: from the machine's side (m1's MAC) or from the host. */
    const tftp = (file: string, inNs = true) => {
      const args = ["-s", "--max-time", "10", `tftp://${address}/${file}`];
      const got = inNs ? spawnSync("ip", ["netns", "exec", ns, "curl", ...args], { encoding: "utf8" }) : spawnSync("curl", args, { encoding: "utf8" });
      return { status: got.status, body: got.stdout };
    };
    const started = start([m1, m2], [], signed);
    expect(started.output).not.toMatch(/warning|error/);
    expect(started.status).toBe(0);
    const conf = fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8");
    expect(conf).toContain("dhcp-boot=tag:!ipxe,tag:efi64,shimx64.efi\n");
    expect(conf).toContain("tftp-unique-root=mac\n");
    // iPXE on UEFI (a NIC's option ROM, as QEMU's) hands the machine back to its firmware, whose own PXE boots shim.
    expect(fetch(`${base}/boot.ipxe`).body).toContain("iseq ${platform} efi && goto firmware ||");
    // The host learns m1's MAC by its address, as dnsmasq does for a machine without a lease.
    execFileSync("ip", ["netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "2", address]);
    // m1 (not installed) reads its own folder: the loaders, then grub.cfg, which reads deploy.cfg: the deploy kernel and its token archive.
    expect(tftp("shimx64.efi").body).toBe("stand-in for shim");
    expect(tftp("grubx64.efi").body).toBe("stand-in for grub");
    const grubCfg = tftp("grub/grub.cfg").body;
    expect(grubCfg).toContain('source "$prefix/deploy.cfg"\nsource "$prefix/disk.cfg"');
    expect(grubSyntax(grubCfg)).toBe(0);
    const deploy = tftp("grub/deploy.cfg").body;
    expect(deploy).toContain(`linux (tftp,${address})/vmlinuz console=`);
    expect(deploy).not.toContain(token(m1.mac));
    expect(deploy).toContain(`initrd (tftp,${address})/initramfs.img (tftp,${address})/token.img\n`);
    expect(tftp("token.img").body).toContain(token(m1.mac));
    expect(tftp("vmlinuz").body).toBe("stand-in for the kernel");
    expect(tftp("initramfs.img").body).toBe("stand-in for the initramfs");
    // The rest of the deploy environment comes over Linux's own network, checked against its sha256.
    const toolsSha = crypto.createHash("sha256").update("stand-in for tools").digest("hex");
    expect(deploy).toContain(` btw.tools=${base}/deploy/minimal/tools.img btw.tools_sha256=${toolsSha} `);
    expect(deploy).not.toContain("ipxe");
    expect(grubSyntax(deploy)).toBe(0);
    // The deploy script and the token are dnsmasq's user's alone on the host, and TFTP gives them to no other address.
    const m1Folder = path.join(stateDir, "tftp", hyphens(m1.mac));
    for (const file of ["grub/deploy.cfg", "token.img"]) {
      const stat = fs.statSync(path.join(m1Folder, file));
      expect({ file, mode: stat.mode & 0o777, owner: stat.uid }).toEqual({ file, mode: 0o400, owner: Number(execFileSync("id", ["-u", "dnsmasq"], { encoding: "utf8" })) });
      expect(tftp(file, false).body).toBe("");
    }
    // Without deploy.cfg (once installed) GRUB goes on to disk.cfg: its disk's own shim, chainloaded at once.
    const disk = fs.readFileSync(path.join(stateDir, "tftp", hyphens(m2.mac), "grub", "disk.cfg"), "utf8");
    expect(disk).toContain("btw-img: m2 boots from its disk");
    expect(disk).toMatch(/for loader in \/EFI\/debian\/shimx64\.efi \/EFI\/BOOT\/BOOTX64\.EFI; do/);
    expect(disk).toContain("search --no-floppy --set=root --file $loader; then chainloader $loader; boot; fi");
    expect(grubSyntax(disk)).toBe(0);
    // A MAC the server does not know (here the host's own) reads tftp/ itself: back to its firmware, booted by nothing of ours.
    const unknown = tftp("grub/grub.cfg", false).body;
    expect(unknown).toContain("is not a machine of this server");
    expect(unknown).not.toMatch(/chainloader|linux|source/);
    expect(grubSyntax(unknown)).toBe(0);
    expect(fetch(`${base}/cgi-bin/boot?mac=52-54-00-98-00-99`).body.trim()).toBe("#!ipxe\necho btw-img: not a machine of this server\nexit 1");
    // At started, the token of m1's next boot (a retry) is armed in its folder's token.img; this boot reports on with its own.
    const first = token(m1.mac);
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${first}&status=started`).code).toBe(200);
    const next = fs.readFileSync(path.join(recordsDir, `${m1.mac}.next-token`), "utf8").trim();
    expect(next).not.toBe(first);
    expect(tftp("token.img").body).toContain(next);
    expect(tftp("token.img").body).not.toContain(first);
    expect(fs.statSync(path.join(m1Folder, "token.img")).uid).toBe(Number(execFileSync("id", ["-u", "dnsmasq"], { encoding: "utf8" })));
    // At done the deploy script leaves m1's folder; reinstall brings it back with a new token.
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${first}&status=done`).code).toBe(200);
    expect(fs.existsSync(path.join(recordsDir, `${m1.mac}.next-token`))).toBe(false);
    expect(fs.existsSync(path.join(m1Folder, "grub", "deploy.cfg"))).toBe(false);
    expect(fs.existsSync(path.join(m1Folder, "token.img"))).toBe(false);
    expect(tftp("grub/disk.cfg").body).toContain("btw-img: m1 boots from its disk");
    expect(run("pxe-server.sh", ["reinstall", "--state-dir", stateDir, "--mac", m1.mac]).status).toBe(0);
    expect(tftp("grub/deploy.cfg").body).toContain("btw.replace=1");
    expect(tftp("token.img").body).toContain(token(m1.mac));
    // A deploy environment without shim and GRUB: UEFI machines get iPXE, and the server says why.
    const fallback = start([m1, m2]);
    expect(fallback.output).toContain("warning: no deploy environment has Debian's signed shim and GRUB");
    expect(fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8")).toContain("dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi\n");
    expect(fetch(`${base}/boot.ipxe`).body).not.toContain("platform");
    // Beside the LAN's DHCP server (proxy DHCP) GRUB would ask that server for its files: UEFI machines get iPXE.
    const proxy = run(
      "pxe-server.sh",
      ["start", "--state-dir", stateDir, "--interface", hostIf, "--address", address, "--http-port", port, "--deploy", `minimal=${signed}`, "--artifacts", `minimal=${artifactsDir}`],
      { PXE_MACHINES: machines([m1, m2]) },
    );
    expect(proxy.status).toBe(0);
    expect(proxy.output).toContain("proxy DHCP: UEFI machines get iPXE, not Debian's signed shim and GRUB");
    expect(fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8")).toContain("pxe-service=tag:!ipxe,X86-64_EFI,btw-img,snponly.efi\n");
    expect(fetch(`${base}/boot.ipxe`).body).not.toContain("platform");
  });

  test("a folder with a newline (or other characters dnsmasq.conf or a shell would read) is refused", () => {
    for (const bad of [`${work}/x\ndhcp-script=/tmp/evil`, `${work}/it's`, `${work}/a,b`, "/"]) {
      const result = run("pxe-server.sh", ["stop", "--state-dir", bad]);
      expect({ bad, status: result.status }).toEqual({ bad, status: 2 });
    }
    expect(fs.existsSync("/tmp/evil")).toBe(false);
  });
});
