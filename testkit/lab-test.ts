// What an end-to-end test of one libvirt lab holds: its workspace (the cdktf CLI
// in a folder of its own), Debian's real image served from the fixture, and the
// lab's libvirt objects (btw-<lab>-*, the network <lab>-net), held while it runs
// (testkit/held.ts). start() in the test's beforeAll, stop() in its afterAll.
import { LabWorkspace } from "./cdktf-cli";
import { fixtureImage } from "./fixture-image";
import { hold } from "./held";
import { FileServer, serveDirectory } from "./http-server";

export class LabUnderTest {
  readonly workspace = new LabWorkspace();
  /** Its libvirt objects' prefix. */
  readonly prefix: string;
  private server?: FileServer;
  private release = () => {};

  /** name: the lab's; holder: the test's name in the held records. */
  constructor(
    readonly name: string,
    private readonly holder: string,
  ) {
    this.prefix = `btw-${name}`;
  }

  /** Holds the lab's names (releasing what a killed run left) and serves the release's image; returns the base URL the lab's image.url is under. */
  async start(release: "trixie" | "bookworm" = "trixie"): Promise<string> {
    this.release = hold(this.holder, { libvirtPrefixes: [this.prefix, `${this.name}-net`] });
    this.server = await serveDirectory(fixtureImage(release).dir);
    return this.server.baseUrl;
  }

  /** `cdktf destroy` of the lab, then what it held released, its workspace removed and the image no longer served. */
  async stop(): Promise<void> {
    await this.workspace.destroy();
    this.release();
    this.workspace.remove();
    await this.server?.close();
  }
}
