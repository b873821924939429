// Who may subscribe to what (contract §5), as one pure decision. Deny by default: only
// the listed cases allow, and a clinician's access to a patient needs a live care relationship.
import type { Channel } from "./Channel.ts"
import type { Principal } from "./Principal.ts"
import type { ClinicianRef, PatientRef } from "./Ref.ts"

export type Decision =
  | { readonly _tag: "Allow" }
  | { readonly _tag: "Deny" }
  | { readonly _tag: "IfCareRelationship"; readonly clinician: ClinicianRef; readonly patient: PatientRef }

const allow: Decision = { _tag: "Allow" }
const deny: Decision = { _tag: "Deny" }

export const canSubscribe = (principal: Principal, channel: Channel): Decision => {
  switch (principal._tag) {
    case "Patient":
      return channel._tag === "patient" && channel.ref === principal.ref ? allow : deny
    case "Clinician":
      if (channel._tag === "clinician") return channel.ref === principal.ref ? allow : deny
      return { _tag: "IfCareRelationship", clinician: principal.ref, patient: channel.ref }
    case "Service":
    case "Admin":
      return deny
  }
}
