// The only module that imports cdktf and the generated provider bindings,
// so moving to a CDKTF fork is a rename here.
export { App, Fn, LocalBackend, PgBackend, TerraformSelf, TerraformStack, TerraformOutput, Testing } from "cdktf";
export type { ITerraformDependable } from "cdktf";
export { DataResource as TerraformData } from "cdktf";
export { LibvirtProvider } from "../.gen/providers/libvirt/provider/index";
export { Domain } from "../.gen/providers/libvirt/domain/index";
export { Network } from "../.gen/providers/libvirt/network/index";
export { Pool } from "../.gen/providers/libvirt/pool/index";
export { Volume } from "../.gen/providers/libvirt/volume/index";

/**
 * The id of a construct's main child: cdktf leaves it out of resource addresses, so a
 * construct wrapping a resource keeps the address the resource had without it.
 */
export const MAIN_CHILD_ID = "Default";

/** A resource's plain address, as lifecycle.replace_triggered_by wants it. */
export function resourceAddress(resource: { terraformResourceType: string; friendlyUniqueId: string }): string {
  return `${resource.terraformResourceType}.${resource.friendlyUniqueId}`;
}
