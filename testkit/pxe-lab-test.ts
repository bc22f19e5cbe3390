// What an end-to-end test (or a bench section) of one PXE lab holds: its workspace
// (the cdktf CLI in a folder of its own), the lab's machines, network and server
// (testkit/pxe-lab.ts) held while it runs (testkit/held.ts), and the BMCs of the
// machines a BMC powers. start() in the test's beforeAll, stop() in its afterAll.
import { BmcDriverName, BmcMachines } from "./bmc-machines";
import { CliRun, LabWorkspace } from "./cdktf-cli";
import { Held, hold } from "./held";
import { PxeLab, PxeMachine } from "./pxe-lab";

export class PxeLabUnderTest {
  readonly workspace = new LabWorkspace();
  /** The BMCs start() started (none: every machine is powered by hand). */
  bmcs?: BmcMachines;
  private release = () => {};

  /** holder: the test's name in the held records; held: what it makes beyond the lab's own (a LAN server's namespace). */
  constructor(
    readonly lab: PxeLab,
    private readonly holder: string,
    private readonly held: Held = {},
  ) {}

  /** Holds the lab's names (releasing what a killed run left), removes what an earlier run left, creates its network and the BMCs of DRIVERS' machines. */
  async start(drivers = new Map<PxeMachine, BmcDriverName>()): Promise<void> {
    this.release = hold(this.holder, { ...this.lab.held(), ...this.held });
    this.lab.cleanup();
    this.lab.createNetwork(this.workspace.dir);
    if (drivers.size > 0) this.bmcs = await BmcMachines.start(this.lab, this.workspace.dir, drivers);
  }

  /** `cdktf deploy baremetal`, with the BMCs' password in its environment. */
  deploy(timeoutMs = 2_400_000): Promise<CliRun> {
    return this.workspace.deployStack("baremetal", timeoutMs, this.bmcs?.env());
  }

  /** `cdktf destroy baremetal`, with the BMCs' password in its environment. */
  destroy(timeoutMs = 600_000): Promise<CliRun> {
    return this.workspace.destroyStack("baremetal", timeoutMs, this.bmcs?.env());
  }

  /** The machines stopped, `cdktf destroy baremetal`, the BMCs stopped, what the lab made removed, its names released, the workspace removed. */
  async stop(): Promise<void> {
    this.lab.stopMachines();
    await this.destroy();
    await this.bmcs?.stop();
    this.lab.cleanup();
    this.release();
    this.workspace.remove();
  }
}
