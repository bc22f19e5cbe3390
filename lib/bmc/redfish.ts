// Redfish (DMTF DSP0266) over HTTPS: the machine's ComputerSystem, its
// PowerState, the ComputerSystem.Reset action and a one-time boot override
// (Boot.BootSourceOverrideTarget Pxe, Enabled Once), PATCHed with the ETag the
// BMC gave. TLS is verified against the host's CAs or bmc.ca_file; only
// bmc.tls_insecure skips it. The password travels in the Authorization header.
import * as fs from "fs";
import * as https from "https";
import { BmcConfig } from "../config/types";
import { BmcDriver, BmcError, PowerState } from "./driver";

interface Reply {
  status: number;
  etag?: string;
  body: Record<string, unknown>;
}

type ResetType = "On" | "ForceOff" | "ForceRestart" | "PowerCycle";

const TIMEOUT_MS = 30_000;

export class RedfishDriver implements BmcDriver {
  private systemPath?: string;

  constructor(
    private readonly machine: string,
    private readonly bmc: BmcConfig,
    private readonly password: () => string,
  ) {}

  async powerState(): Promise<PowerState> {
    const { body } = await this.get(await this.system());
    const state = body.PowerState;
    if (state === "On" || state === "PoweringOn" || state === "Paused") return "on";
    if (state === "Off" || state === "PoweringOff") return "off";
    throw new BmcError(`machine ${this.machine}: the BMC at ${this.where()} reports no PowerState for ${await this.system()}`);
  }

  async power(action: "on" | "off" | "cycle"): Promise<void> {
    const system = await this.system();
    const { body } = await this.get(system);
    const reset = (body.Actions as Record<string, { target?: string; "ResetType@Redfish.AllowableValues"?: string[] }> | undefined)?.["#ComputerSystem.Reset"];
    if (!reset?.target) throw new BmcError(`machine ${this.machine}: ${system} on the BMC at ${this.where()} has no #ComputerSystem.Reset action`);
    const allowed = reset["ResetType@Redfish.AllowableValues"];
    const off = body.PowerState === "Off";
    let type: ResetType = action === "on" ? "On" : action === "off" ? "ForceOff" : off ? "On" : "PowerCycle";
    // PowerCycle is optional in the schema; a restart powers the same machine through its firmware again.
    if (type === "PowerCycle" && allowed && !allowed.includes(type)) type = "ForceRestart";
    if (allowed && !allowed.includes(type)) {
      throw new BmcError(`machine ${this.machine}: the BMC at ${this.where()} allows ResetType ${allowed.join(", ")}, not ${type}`);
    }
    // Off is off already; On is on already: many BMCs answer those with an error.
    if ((type === "ForceOff" && off) || (type === "On" && !off && action === "on")) return;
    await this.request("POST", reset.target, { ResetType: type });
  }

  async bootOnceFromNetwork(): Promise<void> {
    const system = await this.system();
    const boot = {
      BootSourceOverrideTarget: "Pxe",
      BootSourceOverrideEnabled: "Once",
      ...(this.bmc.firmware ? { BootSourceOverrideMode: this.bmc.firmware === "uefi" ? "UEFI" : "Legacy" } : {}),
    };
    // The ETag says which version of the system this change is to; another client's change in between is a 412: read again.
    for (let attempt = 1; ; attempt++) {
      const { etag } = await this.get(system);
      const reply = await this.request("PATCH", system, { Boot: boot }, etag ? { "If-Match": etag } : {}, attempt < 3 ? [412] : []);
      if (reply.status !== 412) return;
    }
  }

  /** The path of the machine's ComputerSystem: bmc.system, else the only member of the Systems collection. */
  private async system(): Promise<string> {
    if (this.systemPath) return this.systemPath;
    const root = await this.get("/redfish/v1/");
    const systems = (root.body.Systems as { "@odata.id"?: string } | undefined)?.["@odata.id"];
    if (!systems) throw new BmcError(`machine ${this.machine}: the BMC at ${this.where()} lists no Systems in /redfish/v1/: is it a Redfish service?`);
    const members = (((await this.get(systems)).body.Members as { "@odata.id": string }[] | undefined) ?? []).map((member) => member["@odata.id"]);
    const ids = members.map((member) => member.replace(/\/$/, "").split("/").pop() as string);
    if (this.bmc.system) {
      const index = ids.indexOf(this.bmc.system);
      if (index < 0) throw new BmcError(`machine ${this.machine}: the BMC at ${this.where()} has no system ${this.bmc.system} (bmc.system); it has ${ids.join(", ") || "none"}`);
      this.systemPath = members[index];
    } else if (members.length === 1) {
      this.systemPath = members[0];
    } else {
      throw new BmcError(`machine ${this.machine}: the BMC at ${this.where()} has ${members.length} systems (${ids.join(", ") || "none"}): name the machine's with bmc.system`);
    }
    return this.systemPath;
  }

  private where(): string {
    return `https://${this.bmc.host}${this.bmc.port ? `:${this.bmc.port}` : ""}`;
  }

  private get(path: string): Promise<Reply> {
    return this.request("GET", path);
  }

  private request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, accept: number[] = []): Promise<Reply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const auth = Buffer.from(`${this.bmc.username}:${this.password()}`).toString("base64");
    const options: https.RequestOptions = {
      method,
      host: this.bmc.host,
      port: this.bmc.port ?? 443,
      path,
      timeout: TIMEOUT_MS,
      rejectUnauthorized: !this.bmc.tlsInsecure,
      ...(this.bmc.caFile ? { ca: fs.readFileSync(this.bmc.caFile) } : {}),
      headers: {
        Accept: "application/json",
        "OData-Version": "4.0",
        Authorization: `Basic ${auth}`,
        ...(payload !== undefined ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } : {}),
        ...headers,
      },
    };
    const what = `${method} ${path}`;
    return new Promise((resolve, reject) => {
      const req = https.request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: Record<string, unknown> = {};
          try {
            parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            // A non-JSON reply is reported by its status below.
          }
          const status = res.statusCode ?? 0;
          const etag = (res.headers.etag as string | undefined) ?? (parsed["@odata.etag"] as string | undefined);
          if ((status >= 200 && status < 300) || accept.includes(status)) return resolve({ status, etag, body: parsed });
          reject(new BmcError(`machine ${this.machine}: the BMC at ${this.where()} (user ${this.bmc.username}) answered ${what} with ${status}${redfishMessage(parsed)}`));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)));
      req.on("error", (error: NodeJS.ErrnoException) => {
        const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(error.code ?? "");
        const hint = tls ? ": its TLS certificate is not trusted; give the CA that signed it as bmc.ca_file (bmc.tls_insecure: true skips the check)" : "";
        reject(new BmcError(`machine ${this.machine}: ${what} to the BMC at ${this.where()} failed (${error.message})${hint}`));
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }
}

/** The message of a Redfish error reply, if it has one. */
function redfishMessage(body: Record<string, unknown>): string {
  const error = body.error as { message?: string; "@Message.ExtendedInfo"?: { Message?: string }[] } | undefined;
  const messages = [error?.message, ...(error?.["@Message.ExtendedInfo"] ?? []).map((info) => info.Message)].filter(Boolean);
  return messages.length ? `: ${messages.join("; ")}` : "";
}
