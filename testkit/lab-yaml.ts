// Builds lab YAML texts for tests: a valid base that each test bends.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";

export interface TestLabOptions {
  name?: string;
  imageBaseUrl?: string;
  release?: "trixie" | "bookworm";
  vms?: Record<string, unknown>[];
  extra?: Record<string, unknown>;
}

export function testLab(options: TestLabOptions = {}): Record<string, unknown> {
  const release = options.release ?? "trixie";
  const base = options.imageBaseUrl ?? "http://127.0.0.1:9/images";
  const file = release === "trixie" ? "debian-13-generic-amd64.tar.xz" : "debian-12-generic-amd64.tar.xz";
  return {
    name: options.name ?? "btwtest",
    release,
    image: { url: `${base}/${file}`, checksums: `${base}/SHA512SUMS` },
    profile: "minimal",
    libvirt: { uri: "qemu:///system", accel: "tcg", firmware: "bios" },
    network: { name: `${options.name ?? "btwtest"}-net`, mode: "isolated", cidr: "10.213.7.0/24" },
    defaults: { memory: 1024, vcpus: 1, disk: 4 },
    vms: options.vms ?? [{ name: "vm1" }],
    ...options.extra,
  };
}

/** Writes lab.yaml into dir, a folder the calling test made and removes. */
export function writeLab(lab: Record<string, unknown>, dir: string): string {
  const file = path.join(dir, "lab.yaml");
  fs.writeFileSync(file, stringify(lab));
  return file;
}
