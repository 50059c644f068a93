/** Caller policies, as an API's form and an organisation's policy page both edit them: a rate limit, an
 * ip_restriction (allow and deny lists of addresses or networks) and a CORS policy. Each is a form value of
 * text (what was typed, so the API says what is wrong), the body it sends (`...Body`), and its fields, which
 * show the API's 422 `fields` beside the input they name. */
import { JunctionError } from "@junction/sdk";
import type { Org } from "@junction/sdk";
import { useId, type ReactNode } from "react";
import { Field, fieldError, num } from "../ui";

export type RateLimit = NonNullable<Org["rate_limit"]>;
export type IpRestriction = NonNullable<Org["ip_restriction"]>;
export type Cors = NonNullable<Org["cors"]>;

/** The messages of a 422 for a list typed one entry a line (or comma separated): "`entry`: message" for
 * `name[i]`, the message alone for `name` itself. */
export function listError(error: unknown, name: string, entries: string[]): string | undefined {
  if (!(error instanceof JunctionError)) return undefined;
  const hits = error.fields.filter((f) => f.field === name || f.field.startsWith(name + "[") || f.field.startsWith(name + "."));
  if (!hits.length) return undefined;
  return hits
    .map((f) => {
      const i = f.field.match(/^[^[]*\[(\d+)\]$/)?.[1];
      if (f.field === name) return f.message;
      return i !== undefined && entries[Number(i)] !== undefined ? `${entries[Number(i)]}: ${f.message}` : `${f.field}: ${f.message}`;
    })
    .join("; ");
}

/** The messages of a 422 for a policy that none of its fields shows (`known`: the settings with a field): the
 * policy as a whole, or a setting the form has no field for. */
export function restError(error: unknown, name: string, known: string[]): string {
  if (!(error instanceof JunctionError)) return "";
  return error.fields
    .filter((f) => (f.field === name || f.field.startsWith(name + ".") || f.field.startsWith(name + "[")) &&
      !known.some((k) => [`${name}.${k}`, `${name}.${k}.`, `${name}.${k}[`].some((p) => f.field === p || f.field.startsWith(p))))
    .map((f) => (f.field === name ? f.message : `${f.field}: ${f.message}`))
    .join("; ");
}

/** Text typed one entry a line (blank lines and spaces around dropped). */
export function linesOf(text: string): string[] {
  return text.split("\n").map((t) => t.trim()).filter(Boolean);
}

/** Text typed comma separated. */
export function commaList(text: string): string[] {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

// -- rate limit --------------------------------------------------------------------------------------------

export interface RateLimitForm {
  on: boolean;
  requests: string;
  per_seconds: string;
  by: RateLimit["by"];
}

export function rateLimitForm(rl: RateLimit | null | undefined): RateLimitForm {
  return {
    on: !!rl,
    requests: rl?.requests ? String(rl.requests) : "",
    per_seconds: rl?.per_seconds ? String(rl.per_seconds) : "",
    by: rl?.by ?? "consumer",
  };
}

/** The `rate_limit` to send: the limit, or null when it is off. */
export function rateLimitBody(f: RateLimitForm): RateLimit | null {
  return f.on ? ({ requests: num(f.requests), per_seconds: num(f.per_seconds), by: f.by } as RateLimit) : null;
}

/** The rate limit's fieldset: a check box to limit at all, then requests, per seconds and for each. */
export function RateLimitFields(props: {
  value: RateLimitForm; onChange: (f: RateLimitForm) => void; error: unknown; readOnly?: boolean; checkLabel: string;
}) {
  const { value: f, error: err, readOnly: ro } = props;
  const set = (patch: Partial<RateLimitForm>) => props.onChange({ ...f, ...patch });
  const whole = restError(err, "rate_limit", ["requests", "per_seconds", "by"]);
  return (
    <fieldset className={`field wide${whole ? " invalid" : ""}`}>
      <legend>Rate limit</legend>
      <label className="check">
        <input type="checkbox" disabled={ro} checked={f.on} onChange={(e) => set({ on: e.target.checked })} />
        {props.checkLabel}
      </label>
      {f.on && (
        <div className="row">
          <Field label="Requests" error={fieldError(err, "rate_limit.requests")}>
            {(p) => <input {...p} inputMode="numeric" readOnly={ro} value={f.requests} onChange={(e) => set({ requests: e.target.value })} />}
          </Field>
          <Field label="Per seconds" error={fieldError(err, "rate_limit.per_seconds")}>
            {(p) => <input {...p} inputMode="decimal" readOnly={ro} value={f.per_seconds} onChange={(e) => set({ per_seconds: e.target.value })} />}
          </Field>
          <Field label="For each" error={fieldError(err, "rate_limit.by")}>
            {(p) => (
              <select {...p} disabled={ro} value={f.by} onChange={(e) => set({ by: e.target.value as RateLimit["by"] })}>
                <option value="consumer">consumer</option>
                <option value="api">API (all callers)</option>
                <option value="org">organisation</option>
                <option value="ip">client address</option>
              </select>
            )}
          </Field>
        </div>
      )}
      {whole && <div className="field-error">{whole}</div>}
    </fieldset>
  );
}

// -- ip_restriction ------------------------------------------------------------------------------------------

export interface IpRestrictionForm {
  allow: string;
  deny: string;
}

export function ipRestrictionForm(rule: IpRestriction | null | undefined): IpRestrictionForm {
  return { allow: (rule?.allow ?? []).join("\n"), deny: (rule?.deny ?? []).join("\n") };
}

/** The `ip_restriction` to send: the lists typed, or null when both are empty (no restriction). */
export function ipRestrictionBody(f: IpRestrictionForm): IpRestriction | null {
  const allow = linesOf(f.allow);
  const deny = linesOf(f.deny);
  if (!allow.length && !deny.length) return null;
  return { ...(allow.length ? { allow } : {}), ...(deny.length ? { deny } : {}) };
}

/** Allowed and denied addresses or networks, one a line; a refused entry's message names it. `note`: a line
 * under the legend (an API's form says how its rule goes with the organisation's). */
export function IpRestrictionFields(props: {
  value: IpRestrictionForm; onChange: (f: IpRestrictionForm) => void; error: unknown; readOnly?: boolean; note?: ReactNode;
}) {
  const { value: f, error: err, readOnly: ro } = props;
  // An entry's error marks its own field; the fieldset is marked for an error of the policy as a whole.
  const whole = restError(err, "ip_restriction", ["allow", "deny"]);
  return (
    <fieldset className={`field wide${whole ? " invalid" : ""}`}>
      <legend>IP restriction</legend>
      {props.note && <p className="hint policy-note">{props.note}</p>}
      <div className="row two">
        <Field label="Allowed addresses" error={listError(err, "ip_restriction.allow", linesOf(f.allow))}
          hint="only these may call: one address or network a line, e.g. 10.0.0.0/8, 203.0.113.7, 2001:db8::/32 (empty: anyone)">
          {(p) => <textarea {...p} rows={4} readOnly={ro} spellCheck={false} value={f.allow}
            onChange={(e) => props.onChange({ ...f, allow: e.target.value })} />}
        </Field>
        <Field label="Denied addresses" error={listError(err, "ip_restriction.deny", linesOf(f.deny))}
          hint="these may not call, even when allowed: one address or network a line">
          {(p) => <textarea {...p} rows={4} readOnly={ro} spellCheck={false} value={f.deny}
            onChange={(e) => props.onChange({ ...f, deny: e.target.value })} />}
        </Field>
      </div>
      {whole && <div className="field-error">{whole}</div>}
    </fieldset>
  );
}

// -- cors -----------------------------------------------------------------------------------------------------

export const CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;
type CorsMethod = (typeof CORS_METHODS)[number];

export interface CorsForm {
  origins: string;
  methods: CorsMethod[];
  headers: string;
  exposed_headers: string;
  credentials: boolean;
  max_age_s: string;
}

export function corsForm(cors: Cors | null | undefined): CorsForm {
  return {
    origins: (cors?.origins ?? []).join(", "),
    methods: (cors?.methods ?? []) as CorsMethod[],
    headers: (cors?.headers ?? []).join(", "),
    exposed_headers: (cors?.exposed_headers ?? []).join(", "),
    credentials: !!cors?.credentials,
    max_age_s: cors?.max_age_s !== undefined && cors?.max_age_s !== null ? String(cors.max_age_s) : "",
  };
}

/** The methods checked, as they are sent: in the order of CORS_METHODS, whatever the order they were checked
 * in (a 422's `cors.methods[i]` is an index into this list). */
export function corsMethods(f: CorsForm): CorsMethod[] {
  return CORS_METHODS.filter((m) => f.methods.includes(m));
}

/** The whole `cors` policy to send (it replaces the stored one), or null when no origin is given. */
export function corsBody(f: CorsForm): Cors | null {
  const origins = commaList(f.origins);
  if (!origins.length) return null;
  const cors: Record<string, unknown> = { origins };
  if (f.methods.length) cors.methods = corsMethods(f);
  if (commaList(f.headers).length) cors.headers = commaList(f.headers);
  if (commaList(f.exposed_headers).length) cors.exposed_headers = commaList(f.exposed_headers);
  if (f.credentials) cors.credentials = true;
  const age = num(f.max_age_s);
  if (age !== undefined) cors.max_age_s = age;
  return cors as unknown as Cors;
}

/** The origins of a CORS policy, comma separated: the one CORS field of an API's form, and the first of an
 * organisation's policy. */
export function CorsOriginsField(props: {
  value: string; onChange: (text: string) => void; error?: string; readOnly?: boolean; label?: string; hint?: string;
}) {
  return (
    <Field label={props.label ?? "Browser origins (CORS)"} error={props.error} className="wide"
      hint={props.hint ?? "pages of these origins may call the API: comma separated, e.g. https://app.example.com, https://*.example.com (docs/cors.md)"}>
      {(p) => <input {...p} readOnly={props.readOnly} value={props.value} onChange={(e) => props.onChange(e.target.value)} />}
    </Field>
  );
}

/** A whole CORS policy: origins, methods, request and exposed headers, credentials, max age. The labels and
 * hints default to an organisation's policy; an API's form names its own (`legend`, `originsLabel`,
 * `methodsLegend`, `methodsHint`) and says how its policy goes with the organisation's (`note`). */
export function CorsFields(props: {
  value: CorsForm; onChange: (f: CorsForm) => void; error: unknown; readOnly?: boolean; originsHint?: string;
  legend?: string; originsLabel?: string; methodsLegend?: string; methodsHint?: string; note?: ReactNode;
}) {
  const { value: f, error: err, readOnly: ro } = props;
  const set = (patch: Partial<CorsForm>) => props.onChange({ ...f, ...patch });
  const sent = corsMethods(f);
  const methodsErrorId = useId();
  const methodsError = listError(err, "cors.methods", sent);
  // The methods a 422 refused (`cors.methods[i]`), marked on their own check boxes.
  const refused = new Set(err instanceof JunctionError
    ? err.fields.map((x) => x.field.match(/^cors\.methods\[(\d+)\]$/)?.[1]).filter((i) => i !== undefined).map((i) => sent[Number(i)])
    : []);
  const whole = restError(err, "cors", ["origins", "methods", "headers", "exposed_headers", "max_age_s", "credentials"]);
  return (
    <fieldset className={`field wide${whole ? " invalid" : ""}`}>
      <legend>{props.legend ?? "Browser origins (CORS)"}</legend>
      {props.note && <p className="hint policy-note">{props.note}</p>}
      <CorsOriginsField label={props.originsLabel ?? "Origins"} value={f.origins} onChange={(origins) => set({ origins })} readOnly={ro}
        error={listError(err, "cors.origins", commaList(f.origins))}
        hint={props.originsHint ?? "pages of these origins may call: comma separated, e.g. https://app.example.com, https://*.example.com, or * (empty: no policy)"} />
      <fieldset className={`field wide methods${methodsError ? " invalid" : ""}`}>
        <legend>{props.methodsLegend ?? "Methods"}</legend>
        {CORS_METHODS.map((m) => (
          <label key={m} className={`check${refused.has(m) ? " refused" : ""}`}>
            <input type="checkbox" disabled={ro} checked={f.methods.includes(m)} aria-invalid={refused.has(m) ? true : undefined}
              aria-describedby={refused.has(m) ? methodsErrorId : undefined}
              onChange={(e) => set({ methods: e.target.checked ? [...f.methods, m] : f.methods.filter((x) => x !== m) })} />
            {m}
          </label>
        ))}
        <div className="hint">{props.methodsHint ?? "none checked: each API's own methods"}</div>
        {methodsError && <div className="field-error" id={methodsErrorId}>{methodsError}</div>}
      </fieldset>
      <div className="row two">
        <Field label="Request headers" error={listError(err, "cors.headers", commaList(f.headers))}
          hint="headers pages may send besides the safelisted ones, comma separated (empty: any a preflight asks for)">
          {(p) => <input {...p} readOnly={ro} value={f.headers} onChange={(e) => set({ headers: e.target.value })} />}
        </Field>
        <Field label="Exposed headers" error={listError(err, "cors.exposed_headers", commaList(f.exposed_headers))}
          hint="response headers pages may read, comma separated, e.g. X-Correlation-Id">
          {(p) => <input {...p} readOnly={ro} value={f.exposed_headers} onChange={(e) => set({ exposed_headers: e.target.value })} />}
        </Field>
        <Field label="Max age (s)" error={fieldError(err, "cors.max_age_s")}
          hint="how long a browser may keep a preflight's answer, 0 to 86400 (empty: the browser's)">
          {(p) => <input {...p} inputMode="numeric" readOnly={ro} value={f.max_age_s} onChange={(e) => set({ max_age_s: e.target.value })} />}
        </Field>
        <div className="field">
          <label className="check">
            <input type="checkbox" disabled={ro} checked={f.credentials} aria-invalid={fieldError(err, "cors.credentials") ? true : undefined}
              onChange={(e) => set({ credentials: e.target.checked })} />
            Credentials (pages may send cookies and HTTP authentication)
          </label>
          {fieldError(err, "cors.credentials") && <div className="field-error">{fieldError(err, "cors.credentials")}</div>}
        </div>
      </div>
      {whole && <div className="field-error">{whole}</div>}
    </fieldset>
  );
}
