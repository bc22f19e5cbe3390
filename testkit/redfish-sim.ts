// A Redfish service for tests, on https://127.0.0.1:PORT, that follows DMTF's
// ComputerSystem schema for what btw uses: the service root, the Systems
// collection, each system's PowerState, the #ComputerSystem.Reset action with
// its allowable ResetType values, and a Boot override PATCHed with If-Match
// against the system's ETag (412 when it does not match); a one-time override
// (Enabled Once) is used up by the next power-on. Basic authentication; its TLS
// certificate is signed by a CA of its own (caFile). A system given a libvirt
// domain powers that domain; one given a chassis folder powers it through
// __tests__/fixtures/bmc-chassis.sh, as the IPMI simulator does (a domain booted
// from the network once). It is not a vendor BMC: it stands in for one here,
// where none runs.
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as https from "https";
import { AddressInfo } from "net";
import * as path from "path";
import { PROJECT_DIR } from "../lib/paths";

const CHASSIS = path.join(PROJECT_DIR, "__tests__", "fixtures", "bmc-chassis.sh");

const RESET_TYPES = ["On", "ForceOff", "ForceRestart", "GracefulShutdown", "PowerCycle"];
const TARGETS = ["None", "Pxe", "Hdd", "Cd", "BiosSetup"];
const ENABLED = ["Disabled", "Once", "Continuous"];
const MODES = ["UEFI", "Legacy"];

interface SimSystem {
  domain?: string;
  /** The chassis folder of __tests__/fixtures/bmc-chassis.sh that powers it. */
  chassisDir?: string;
  power: "On" | "Off";
  boot: { BootSourceOverrideTarget: string; BootSourceOverrideEnabled: string; BootSourceOverrideMode: string };
  /** What the system was told, a line each ("reset On", "boot Pxe Once UEFI", "power on from Pxe"). */
  actions: string[];
  /** Bumped at every change: the ETag's source. */
  version: number;
  patches: number;
}

function chassis(dir: string, ...args: string[]): string {
  const run = spawnSync("sh", [CHASSIS, dir, ...args], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`bmc-chassis.sh ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

function virsh(...args: string[]): string {
  const run = spawnSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });
  return run.status === 0 ? run.stdout.trim() : "";
}

/** A CA and a certificate for 127.0.0.1 signed by it, in DIR. */
function makeCertificates(dir: string): { ca: string; key: string; cert: string } {
  const files = {
    ca: path.join(dir, "ca.pem"),
    caKey: path.join(dir, "ca.key"),
    key: path.join(dir, "bmc.key"),
    csr: path.join(dir, "bmc.csr"),
    cert: path.join(dir, "bmc.pem"),
    ext: path.join(dir, "bmc.ext"),
  };
  const openssl = (...args: string[]) => {
    const run = spawnSync("openssl", args, { encoding: "utf8" });
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr}`);
  };
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", files.caKey, "-out", files.ca, "-days", "2", "-subj", "/CN=btw test BMC CA");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", files.key, "-out", files.csr, "-subj", "/CN=127.0.0.1");
  fs.writeFileSync(files.ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
  openssl("x509", "-req", "-in", files.csr, "-CA", files.ca, "-CAkey", files.caKey, "-CAcreateserial", "-out", files.cert, "-days", "2", "-extfile", files.ext);
  return { ca: files.ca, key: files.key, cert: files.cert };
}

export class RedfishSim {
  private readonly systems = new Map<string, SimSystem>();
  private readonly racing = new Set<string>();

  private constructor(
    private readonly server: https.Server,
    /** The CA certificate (PEM) that signed the service's certificate. */
    readonly caFile: string,
    private readonly username: string,
    private readonly password: string,
  ) {}

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Starts the service with its certificates in DIR (the caller's); each of SYSTEMS is an Id, with a libvirt domain or a chassis folder to power, or none. */
  static async start(dir: string, username: string, password: string, systems: Record<string, string | { chassisDir: string } | undefined>): Promise<RedfishSim> {
    fs.mkdirSync(dir, { recursive: true });
    const tls = makeCertificates(dir);
    const server = https.createServer({ key: fs.readFileSync(tls.key), cert: fs.readFileSync(tls.cert) }, (req, res) => sim.handle(req, res));
    const sim = new RedfishSim(server, tls.ca, username, password);
    for (const [id, target] of Object.entries(systems)) {
      const [domain, chassisDir] = typeof target === "object" ? [undefined, target.chassisDir] : [target, undefined];
      sim.systems.set(id, {
        domain,
        chassisDir,
        power: "Off",
        boot: { BootSourceOverrideTarget: "None", BootSourceOverrideEnabled: "Disabled", BootSourceOverrideMode: "UEFI" },
        actions: [],
        version: 0,
        patches: 0,
      });
    }
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return sim;
  }

  actions(id: string): string[] {
    return [...(this.systems.get(id)?.actions ?? [])];
  }

  /** The system's Boot properties as a client would read them. */
  boot(id: string): SimSystem["boot"] | undefined {
    const system = this.systems.get(id);
    return system && { ...system.boot };
  }

  /** Another client changes the system right after the next GET of it: a PATCH with that GET's ETag meets a newer one. */
  changeAfterNextGet(id: string): void {
    this.racing.add(id);
  }

  /** PATCH requests to the system, answered or refused. */
  patches(id: string): number {
    return this.systems.get(id)?.patches ?? 0;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private powerOf(system: SimSystem): "On" | "Off" {
    if (system.chassisDir) system.power = chassis(system.chassisDir, "get", "power").trim() === "power:1" ? "On" : "Off";
    if (system.domain) system.power = virsh("domstate", system.domain) === "running" ? "On" : "Off";
    return system.power;
  }

  private etag(id: string, system: SimSystem): string {
    return `W/"${createHash("sha256").update(`${id}/${system.version}`).digest("hex").slice(0, 16)}"`;
  }

  private setPower(system: SimSystem, on: boolean): void {
    const override = on && system.boot.BootSourceOverrideEnabled !== "Disabled" && system.boot.BootSourceOverrideTarget !== "None";
    if (system.chassisDir) chassis(system.chassisDir, "set", ...(override && system.boot.BootSourceOverrideTarget === "Pxe" ? ["boot", "pxe"] : []), "power", on ? "1" : "0");
    if (override) {
      system.actions.push(`power on from ${system.boot.BootSourceOverrideTarget}`);
      // A one-time override is used up by the boot it applies to.
      if (system.boot.BootSourceOverrideEnabled === "Once") system.boot = { ...system.boot, BootSourceOverrideEnabled: "Disabled", BootSourceOverrideTarget: "None" };
    }
    system.power = on ? "On" : "Off";
    if (system.domain) {
      if (on) virsh("start", system.domain);
      else virsh("destroy", system.domain);
    }
    system.version++;
  }

  private handle(req: import("http").IncomingMessage, res: import("http").ServerResponse): void {
    const reply = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "Content-Type": "application/json", "OData-Version": "4.0", ...headers });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    const error = (status: number, id: string, message: string) =>
      reply(status, { error: { code: `Base.1.16.${id}`, message, "@Message.ExtendedInfo": [{ MessageId: `Base.1.16.${id}`, Message: message }] } });
    const expected = `Basic ${Buffer.from(`${this.username}:${this.password}`).toString("base64")}`;
    if (req.headers.authorization !== expected) {
      res.setHeader("WWW-Authenticate", 'Basic realm="btw test BMC"');
      return error(401, "InsufficientPrivilege", "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.");
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = (req.url ?? "/").replace(/\/$/, "");
      let body: Record<string, unknown> = {};
      try {
        body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>) : {};
      } catch {
        return error(400, "MalformedJSON", "The request body submitted was malformed JSON and could not be parsed by the receiving service.");
      }
      if (req.method === "GET" && url === "/redfish/v1") {
        return reply(200, {
          "@odata.id": "/redfish/v1/",
          "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
          Id: "RootService",
          RedfishVersion: "1.17.0",
          Systems: { "@odata.id": "/redfish/v1/Systems" },
        });
      }
      if (req.method === "GET" && url === "/redfish/v1/Systems") {
        const members = [...this.systems.keys()].map((id) => ({ "@odata.id": `/redfish/v1/Systems/${id}` }));
        return reply(200, { "@odata.id": "/redfish/v1/Systems", "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection", Members: members, "Members@odata.count": members.length });
      }
      const match = /^\/redfish\/v1\/Systems\/([^/]+)(\/Actions\/ComputerSystem\.Reset)?$/.exec(url);
      const id = match?.[1] ?? "";
      const system = this.systems.get(id);
      if (!match || !system) return error(404, "ResourceMissingAtURI", `The resource at the URI ${url} was not found.`);
      const self = `/redfish/v1/Systems/${id}`;
      if (match[2]) {
        if (req.method !== "POST") return error(405, "OperationNotAllowed", "The HTTP method is not allowed on this resource.");
        const type = body.ResetType as string;
        if (!RESET_TYPES.includes(type))
          return error(400, "ActionParameterValueNotInList", `The value '${String(type)}' for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values.`);
        system.actions.push(`reset ${type}`);
        try {
          const on = this.powerOf(system) === "On";
          if (type === "On" && !on) this.setPower(system, true);
          if ((type === "ForceOff" || type === "GracefulShutdown") && on) this.setPower(system, false);
          if (type === "ForceRestart" || type === "PowerCycle") {
            if (on) this.setPower(system, false);
            this.setPower(system, true);
          }
        } catch (failed) {
          // What the machine behind it said (the chassis script, virsh), as a BMC's internal error.
          return error(500, "InternalError", `The request failed due to an internal service error: ${(failed as Error).message}`);
        }
        return reply(204);
      }
      if (req.method === "GET") {
        const etag = this.etag(id, system);
        if (this.racing.delete(id)) system.version++;
        return reply(
          200,
          {
            "@odata.id": self,
            "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
            Id: id,
            Name: system.domain ?? id,
            PowerState: this.powerOf(system),
            Boot: { ...system.boot, "BootSourceOverrideTarget@Redfish.AllowableValues": TARGETS },
            Actions: { "#ComputerSystem.Reset": { target: `${self}/Actions/ComputerSystem.Reset`, "ResetType@Redfish.AllowableValues": RESET_TYPES } },
          },
          { ETag: etag },
        );
      }
      if (req.method === "PATCH") {
        system.patches++;
        const ifMatch = req.headers["if-match"];
        if (ifMatch !== undefined && ifMatch !== this.etag(id, system)) return error(412, "PreconditionFailed", "The ETag supplied did not match the ETag required to change this resource.");
        const unknown = Object.keys(body).filter((key) => key !== "Boot");
        if (unknown.length) return error(400, "PropertyNotWritable", `The property ${unknown[0]} is a read only property and cannot be assigned a value.`);
        const boot = (body.Boot ?? {}) as Record<string, string>;
        const allowed: Record<string, string[]> = { BootSourceOverrideTarget: TARGETS, BootSourceOverrideEnabled: ENABLED, BootSourceOverrideMode: MODES };
        for (const [key, value] of Object.entries(boot)) {
          if (!allowed[key]) return error(400, "PropertyUnknown", `The property ${key} is not in the list of valid properties for the resource.`);
          if (!allowed[key].includes(value)) return error(400, "PropertyValueNotInList", `The value '${value}' for the property ${key} is not in the list of acceptable values.`);
        }
        system.boot = { ...system.boot, ...boot };
        system.actions.push(`boot ${system.boot.BootSourceOverrideTarget} ${system.boot.BootSourceOverrideEnabled} ${system.boot.BootSourceOverrideMode}`);
        system.version++;
        return reply(204);
      }
      return error(405, "OperationNotAllowed", "The HTTP method is not allowed on this resource.");
    });
  }
}
