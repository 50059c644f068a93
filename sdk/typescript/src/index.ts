/**
 * Junction's management API (/api/v1) from TypeScript: the types are generated from the OpenAPI
 * document (src/schema.d.ts, by openapi-typescript from openapi.json), and every call goes through
 * openapi-fetch, so a path, parameter or body the document does not describe does not compile.
 *
 * One method per operation of the document (tests/console/test_sdk_coverage.py checks it); `raw` is
 * the typed openapi-fetch client itself, for anything else.
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./schema";

export type { components, operations, paths };
export type Schemas = components["schemas"];
export type Token = Schemas["Token"];
export type Org = Schemas["Org"];
export type User = Schemas["User"];
export type Api = Schemas["Api"];
export type Connector = Schemas["Connector"];
export type Consumer = Schemas["Consumer"];
export type ApiKey = Schemas["ApiKey"];
export type NewApiKey = Schemas["NewApiKey"];
export type OAuthClient = Schemas["OAuthClient"];
export type NewOAuthClient = Schemas["NewOAuthClient"];
export type Version = Schemas["Version"];
export type Diff = Schemas["Diff"];
export type AuditEntry = Schemas["AuditEntry"];
export type AuditPage = Schemas["AuditPage"];
export type Breaker = Schemas["Breaker"];
export type ConfigApplied = Schemas["ConfigApplied"];
export type InstanceList = Schemas["InstanceList"];
export type ProducerKey = Schemas["ProducerKey"];

/** What keeps a change from every instance, in words, from `configApplied`'s answer (as the Python SDK's
 * `describe_not_applied`). */
export function describeNotApplied(answer: ConfigApplied): string {
  if (!answer.relayed) return "the control plane has not yet written the change to Kafka (is the broker up?)";
  const parts = answer.missing.map((name) => `no ${name} instance is running`);
  for (const [name, n] of Object.entries(answer.services)) {
    if (n.instances && n.applied < n.instances) {
      const silent = n.silent ? `, ${n.silent} of them silent for over 2 s (stalled or killed)` : "";
      parts.push(`${n.instances - n.applied} of ${n.instances} ${name} instances behind${silent}`);
    }
  }
  return parts.join("; ") || "not yet applied";
}
export type DeadLetterSummary = Schemas["DeadLetterSummary"];
export type DeadLetter = Schemas["DeadLetter"];
export type ConnectorTestResult = Schemas["ConnectorTestResult"];
export type MetricPoint = Schemas["MetricPoint"];
export type OrgMetrics = Schemas["OrgMetrics"];
export type AllMetrics = Schemas["AllMetrics"];
export type RequestLog = Schemas["RequestLog"];
export type ApiCreate = Schemas["ApiCreate"];
export type ApiUpdate = Schemas["ApiUpdate"];
export type ConnectorCreate = Schemas["ConnectorCreate"];
export type ConnectorUpdate = Schemas["ConnectorUpdate"];
export type ConnectorTestRequest = Schemas["ConnectorTestRequest"];
export type ConnectorTryRequest = Schemas["ConnectorTryRequest"];
export type OrgCreate = Schemas["OrgCreate"];
export type OrgUpdate = Schemas["OrgUpdate"];
export type UserCreate = Schemas["UserCreate"];
export type UserUpdate = Schemas["UserUpdate"];
export type ConsumerCreate = Schemas["ConsumerCreate"];
export type ConsumerUpdate = Schemas["ConsumerUpdate"];
export type KeyCreate = Schemas["KeyCreate"];
export type OAuthClientCreate = Schemas["OAuthClientCreate"];

export type ReplayCreate = NonNullable<
  paths["/api/v1/orgs/{org}/replays"]["post"]["requestBody"]
>["content"]["application/json"];

/** The three resource kinds that keep versions (alert rules have their own methods). */
export type Kind = "apis" | "connectors" | "consumers";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Every item of a paginated list, following next_cursor page by page; stops once it holds `max` or more. */
export async function everyPage<T>(
  page: (cursor: string | undefined) => Promise<Page<T>>,
  max = Number.POSITIVE_INFINITY,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const got = await page(cursor);
    items.push(...got.items);
    cursor = got.next_cursor ?? undefined;
  } while (cursor && items.length < max);
  return items;
}

type Query<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;

export interface FieldError {
  field: string;
  message: string;
}

/** An answer of 400 or more: the API's error body, parsed. */
export class JunctionError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: FieldError[];
  readonly requestId: string | undefined;
  /** the whole error body (e.g. `line` of a 422 script_invalid) */
  readonly body: Record<string, unknown>;

  constructor(status: number, body: unknown) {
    const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
    const code = typeof b.code === "string" ? b.code : "error";
    const message = typeof b.message === "string" ? b.message : `HTTP ${status}`;
    super(`${status} ${code}: ${message}`);
    this.name = "JunctionError";
    this.status = status;
    this.code = code;
    this.fields = Array.isArray(b.fields) ? (b.fields as FieldError[]) : [];
    this.requestId = typeof b.request_id === "string" ? b.request_id : undefined;
    this.body = b;
  }

  /** The message of one field (dotted path, e.g. `auth.mode`), if the answer names it. */
  field(name: string): string | undefined {
    return this.fields.find((f) => f.field === name)?.message;
  }
}

export interface ClientOptions {
  /** where the control service is: "" (same origin, as the console) or e.g. http://127.0.0.1:8081 */
  baseUrl?: string;
  /** the bearer token, or a function giving the current one */
  token?: string | null | (() => string | null | undefined);
  fetch?: typeof globalThis.fetch;
  /** called with every 401 answer (e.g. to send the user back to log-in) before it is thrown */
  onUnauthorized?: (error: JunctionError) => void;
}

/** `W/"<n>"`: the If-Match value that names version n. */
export function etag(version: number): string {
  return `W/"${version}"`;
}

/**
 * Each path parameter as one percent-encoded segment. An id, a name or a slug an application read from its
 * user must name that resource and never another path: URL resolution follows `..` (even encoded), so
 * `.`, `..` and the empty string are refused before anything is sent.
 */
export function pathSegments(pathname: string, params: Record<string, unknown>): string {
  return pathname.replace(/\{([^}]+)\}/g, (whole: string, name: string) => {
    const value = params?.[name];
    if (value === undefined || value === null) return whole;
    const text = String(value);
    if (text === "" || text === "." || text === "..") {
      throw new Error(`${JSON.stringify(text)} is not an id, a name or a slug`);
    }
    return encodeURIComponent(text);
  });
}

function isAbort(e: unknown): boolean {
  return (e instanceof Error || (typeof DOMException !== "undefined" && e instanceof DOMException)) && e.name === "AbortError";
}

/** The error of a call that got no answer: status 0, code "unreachable", the URL and the cause in its message. */
function unreachable(url: string, cause: unknown): JunctionError {
  const why = cause instanceof Error ? (cause.cause instanceof Error ? `${cause.message} (${cause.cause.message})` : cause.message) : String(cause);
  const error = new JunctionError(0, { code: "unreachable", message: `could not reach ${url}: ${why}` });
  (error as { cause?: unknown }).cause = cause;
  return error;
}

function ifMatch(version?: number): { "If-Match"?: string } {
  return version === undefined ? {} : { "If-Match": etag(version) };
}

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

export class JunctionClient {
  readonly raw: Client<paths>;
  private readonly tokenOption: ClientOptions["token"];
  private readonly onUnauthorized: ClientOptions["onUnauthorized"];
  private readonly fetchImpl: typeof globalThis.fetch;
  readonly baseUrl: string;
  /** the token login() or changePassword() last returned, when no token function was given */
  token: string | null;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/$/, "");
    this.tokenOption = options.token;
    this.token = typeof options.token === "string" ? options.token : null;
    this.onUnauthorized = options.onUnauthorized;
    const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    // A call that gets no answer at all (refused, DNS, TLS, reset) rejects with the SDK's own error, code
    // "unreachable", naming the URL; an aborted call still rejects with the AbortError its signal gave.
    this.fetchImpl = async (input, init) => {
      try {
        return await fetchImpl(input, init);
      } catch (e) {
        if (isAbort(e)) throw e;
        throw unreachable(input instanceof Request ? input.url : String(input), e);
      }
    };
    this.raw = createClient<paths>({ baseUrl: this.baseUrl, fetch: this.fetchImpl, pathSerializer: pathSegments });
    this.raw.use({
      onRequest: ({ request }) => {
        const token = this.currentToken();
        if (token && !request.headers.has("Authorization")) {
          request.headers.set("Authorization", `Bearer ${token}`);
        }
        return request;
      },
    });
  }

  currentToken(): string | null {
    if (typeof this.tokenOption === "function") return this.tokenOption() ?? null;
    return this.token;
  }

  private fail(status: number, body: unknown): never {
    const error = new JunctionError(status, body);
    if (status === 401) this.onUnauthorized?.(error);
    throw error;
  }

  private async unwrap<T>(call: Promise<Outcome<T>>): Promise<T> {
    const { data, error, response } = await call;
    if (!response.ok) this.fail(response.status, error);
    return data as T;
  }

  private async none(call: Promise<Outcome<unknown>>): Promise<void> {
    const { error, response } = await call;
    if (!response.ok) this.fail(response.status, error);
  }

  // -- health and the document ----------------------------------------------------------------
  healthz(): Promise<Record<string, unknown>> {
    return this.unwrap(this.raw.GET("/healthz"));
  }

  readyz(): Promise<Record<string, unknown>> {
    return this.unwrap(this.raw.GET("/readyz"));
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.unwrap(this.raw.GET("/api/v1/openapi.json"));
  }

  /** Whether every running instance has applied every configuration change made so far; the control plane
   * waits up to `waitS` seconds (at most 60) for it before answering. */
  configApplied(waitS = 0): Promise<ConfigApplied> {
    return this.unwrap(this.raw.GET("/api/v1/config/applied", { params: { query: { wait: waitS } } }));
  }

  /** Wait until every running instance has applied every change made so far: after a change, before calling
   * what it changed. Rejects after `timeoutS` seconds. */
  async waitApplied(timeoutS = 30): Promise<ConfigApplied> {
    const until = Date.now() + timeoutS * 1000;
    for (;;) {
      const left = Math.max(0, Math.min((until - Date.now()) / 1000, 20));
      const answer = await this.configApplied(Math.round(left * 1000) / 1000);
      if (answer.applied) return answer;
      if (Date.now() >= until) throw new Error(`not applied after ${timeoutS} s: ${describeNotApplied(answer)}`);
      await new Promise((resolve) => setTimeout(resolve, 100)); // answered without waiting: not a busy loop
    }
  }

  /** The running ingress, processors and egress instances and how far each has applied the configuration
   * (global admins). */
  instances(): Promise<InstanceList> {
    return this.unwrap(this.raw.GET("/api/v1/instances"));
  }

  /** The public key async producers seal their callers' credentials to (docs/async-producers.md). */
  producerKey(): Promise<ProducerKey> {
    return this.unwrap(this.raw.GET("/api/v1/producer-key"));
  }

  // -- sessions -------------------------------------------------------------------------------
  async login(email: string, password: string): Promise<Token> {
    const token = await this.unwrap(this.raw.POST("/api/v1/auth/login", { body: { email, password } }));
    this.token = token.access_token;
    return token;
  }

  async logout(): Promise<void> {
    await this.none(this.raw.POST("/api/v1/auth/logout"));
    this.token = null;
  }

  async changePassword(currentPassword: string, newPassword: string): Promise<Token> {
    const token = await this.unwrap(
      this.raw.POST("/api/v1/me/password", {
        body: { current_password: currentPassword, new_password: newPassword },
      }),
    );
    this.token = token.access_token;
    return token;
  }

  // -- global admins, security events, usage ----------------------------------------------------
  listAdmins(query: Query<"/api/v1/admins", "get"> = {}): Promise<Page<User>> {
    return this.unwrap(this.raw.GET("/api/v1/admins", { params: { query } })) as Promise<Page<User>>;
  }

  createAdmin(body: Schemas["AdminCreate"]) {
    return this.unwrap(this.raw.POST("/api/v1/admins", { body }));
  }

  setAdminEnabled(id: string, enabled: boolean, version?: number): Promise<User> {
    return this.unwrap(
      this.raw.PATCH("/api/v1/admins/{id}", {
        params: { path: { id }, header: ifMatch(version) },
        body: { enabled },
      }),
    );
  }

  resetAdminPassword(id: string, body: Schemas["PasswordReset"] = {}) {
    return this.unwrap(this.raw.POST("/api/v1/admins/{id}/password", { params: { path: { id } }, body }));
  }

  securityEvents(query: Query<"/api/v1/security-events", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/security-events", { params: { query } }));
  }

  usage(query: Query<"/api/v1/usage", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/usage", { params: { query } }));
  }

  orgUsage(org: string, query: Query<"/api/v1/orgs/{org}/usage", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/usage", { params: { path: { org }, query } }));
  }

  // -- organisations --------------------------------------------------------------------------
  /** Every organisation you may see, oldest first (the list comes a page at a time). */
  listOrgs(): Promise<Org[]> {
    return everyPage((cursor) =>
      this.unwrap(this.raw.GET("/api/v1/orgs", { params: { query: { limit: 1000, cursor } } })) as Promise<Page<Org>>,
    );
  }

  createOrg(body: OrgCreate): Promise<Org> {
    return this.unwrap(this.raw.POST("/api/v1/orgs", { body }));
  }

  getOrg(org: string): Promise<Org> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}", { params: { path: { org } } }));
  }

  updateOrg(org: string, body: OrgUpdate, version?: number): Promise<Org> {
    return this.unwrap(
      this.raw.PATCH("/api/v1/orgs/{org}", { params: { path: { org }, header: ifMatch(version) }, body }),
    );
  }

  deleteOrg(org: string, version?: number): Promise<void> {
    return this.none(this.raw.DELETE("/api/v1/orgs/{org}", { params: { path: { org }, header: ifMatch(version) } }));
  }

  // -- users ------------------------------------------------------------------------------------
  /** Every user of the organisation, oldest first. */
  listUsers(org: string): Promise<User[]> {
    return everyPage((cursor) =>
      this.unwrap(
        this.raw.GET("/api/v1/orgs/{org}/users", { params: { path: { org }, query: { limit: 1000, cursor } } }),
      ) as Promise<Page<User>>,
    );
  }

  createUser(org: string, body: UserCreate): Promise<User> {
    return this.unwrap(this.raw.POST("/api/v1/orgs/{org}/users", { params: { path: { org } }, body }));
  }

  getUser(org: string, user: string): Promise<User> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/users/{user}", { params: { path: { org, user } } }));
  }

  updateUser(org: string, user: string, body: UserUpdate, version?: number): Promise<User> {
    return this.unwrap(
      this.raw.PATCH("/api/v1/orgs/{org}/users/{user}", {
        params: { path: { org, user }, header: ifMatch(version) },
        body,
      }),
    );
  }

  deleteUser(org: string, user: string, version?: number): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/users/{user}", {
        params: { path: { org, user }, header: ifMatch(version) },
      }),
    );
  }

  // -- connectors -------------------------------------------------------------------------------
  listConnectors(org: string, query: Query<"/api/v1/orgs/{org}/connectors", "get"> = {}): Promise<Page<Connector>> {
    return this.unwrap(
      this.raw.GET("/api/v1/orgs/{org}/connectors", { params: { path: { org }, query } }),
    ) as Promise<Page<Connector>>;
  }

  createConnector(org: string, body: ConnectorCreate): Promise<Connector> {
    return this.unwrap(this.raw.POST("/api/v1/orgs/{org}/connectors", { params: { path: { org } }, body }));
  }

  getConnector(org: string, id: string): Promise<Connector> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/connectors/{id}", { params: { path: { org, id } } }));
  }

  /** `id` may be the name: given one nothing has, creates it (201). */
  replaceConnector(org: string, id: string, body: ConnectorCreate, version?: number): Promise<Connector> {
    return this.unwrap(
      this.raw.PUT("/api/v1/orgs/{org}/connectors/{id}", {
        params: { path: { org, id }, header: ifMatch(version) },
        body,
      }),
    );
  }

  updateConnector(org: string, id: string, body: ConnectorUpdate, version?: number): Promise<Connector> {
    return this.unwrap(
      this.raw.PATCH("/api/v1/orgs/{org}/connectors/{id}", {
        params: { path: { org, id }, header: ifMatch(version) },
        body,
      }),
    );
  }

  deleteConnector(org: string, id: string, version?: number): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/connectors/{id}", {
        params: { path: { org, id }, header: ifMatch(version) },
      }),
    );
  }

  /** Run a saved connector's script (or `body.script` instead) on a sample request and/or response. */
  testConnector(org: string, id: string, body: ConnectorTestRequest = {}): Promise<ConnectorTestResult> {
    return this.unwrap(
      this.raw.POST("/api/v1/orgs/{org}/connectors/{id}/test", { params: { path: { org, id } }, body }),
    );
  }

  /** Run a script of a connector not saved yet. */
  tryScript(org: string, body: ConnectorTryRequest): Promise<ConnectorTestResult> {
    return this.unwrap(this.raw.POST("/api/v1/orgs/{org}/connectors/test", { params: { path: { org } }, body }));
  }

  breaker(org: string, id: string): Promise<Breaker> {
    return this.unwrap(
      this.raw.GET("/api/v1/orgs/{org}/connectors/{id}/breaker", { params: { path: { org, id } } }),
    );
  }

  // -- APIs ---------------------------------------------------------------------------------------
  listApis(org: string, query: Query<"/api/v1/orgs/{org}/apis", "get"> = {}): Promise<Page<Api>> {
    return this.unwrap(
      this.raw.GET("/api/v1/orgs/{org}/apis", { params: { path: { org }, query } }),
    ) as Promise<Page<Api>>;
  }

  createApi(org: string, body: ApiCreate): Promise<Api> {
    return this.unwrap(this.raw.POST("/api/v1/orgs/{org}/apis", { params: { path: { org } }, body }));
  }

  getApi(org: string, id: string): Promise<Api> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/apis/{id}", { params: { path: { org, id } } }));
  }

  /** `id` may be the name: given one nothing has, creates it (201). */
  replaceApi(org: string, id: string, body: ApiCreate, version?: number): Promise<Api> {
    return this.unwrap(
      this.raw.PUT("/api/v1/orgs/{org}/apis/{id}", { params: { path: { org, id }, header: ifMatch(version) }, body }),
    );
  }

  updateApi(org: string, id: string, body: ApiUpdate, version?: number): Promise<Api> {
    return this.unwrap(
      this.raw.PATCH("/api/v1/orgs/{org}/apis/{id}", { params: { path: { org, id }, header: ifMatch(version) }, body }),
    );
  }

  deleteApi(org: string, id: string, version?: number): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/apis/{id}", { params: { path: { org, id }, header: ifMatch(version) } }),
    );
  }

  // -- consumers and their credentials ----------------------------------------------------------------
  listConsumers(org: string, query: Query<"/api/v1/orgs/{org}/consumers", "get"> = {}): Promise<Page<Consumer>> {
    return this.unwrap(
      this.raw.GET("/api/v1/orgs/{org}/consumers", { params: { path: { org }, query } }),
    ) as Promise<Page<Consumer>>;
  }

  createConsumer(org: string, body: ConsumerCreate): Promise<Consumer> {
    return this.unwrap(this.raw.POST("/api/v1/orgs/{org}/consumers", { params: { path: { org } }, body }));
  }

  getConsumer(org: string, id: string): Promise<Consumer> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/consumers/{id}", { params: { path: { org, id } } }));
  }

  /** Sets name and enabled; given a name nothing has (as `id`), creates the consumer. Credentials stay. */
  replaceConsumer(org: string, id: string, body: ConsumerCreate, version?: number): Promise<Consumer> {
    return this.unwrap(
      this.raw.PUT("/api/v1/orgs/{org}/consumers/{id}", {
        params: { path: { org, id }, header: ifMatch(version) },
        body,
      }),
    );
  }

  updateConsumer(org: string, id: string, body: ConsumerUpdate, version?: number): Promise<Consumer> {
    return this.unwrap(
      this.raw.PATCH("/api/v1/orgs/{org}/consumers/{id}", {
        params: { path: { org, id }, header: ifMatch(version) },
        body,
      }),
    );
  }

  deleteConsumer(org: string, id: string, version?: number): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/consumers/{id}", {
        params: { path: { org, id }, header: ifMatch(version) },
      }),
    );
  }

  async listKeys(org: string, id: string): Promise<ApiKey[]> {
    const page = await this.unwrap(
      this.raw.GET("/api/v1/orgs/{org}/consumers/{id}/keys", { params: { path: { org, id } } }),
    );
    return page.items as ApiKey[];
  }

  /** A new API key: `key` is in this answer only. */
  createKey(org: string, id: string, body: KeyCreate = {}): Promise<NewApiKey> {
    return this.unwrap(
      this.raw.POST("/api/v1/orgs/{org}/consumers/{id}/keys", { params: { path: { org, id } }, body }),
    );
  }

  revokeKey(org: string, id: string, keyId: string): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/consumers/{id}/keys/{key_id}", {
        params: { path: { org, id, key_id: keyId } },
      }),
    );
  }

  setBasic(org: string, id: string, username: string, password: string): Promise<Consumer> {
    return this.unwrap(
      this.raw.POST("/api/v1/orgs/{org}/consumers/{id}/basic", {
        params: { path: { org, id } },
        body: { username, password },
      }),
    );
  }

  deleteBasic(org: string, id: string): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/consumers/{id}/basic", { params: { path: { org, id } } }),
    );
  }

  async listOAuthClients(org: string, id: string): Promise<OAuthClient[]> {
    const page = await this.unwrap(
      this.raw.GET("/api/v1/orgs/{org}/consumers/{id}/oauth-clients", { params: { path: { org, id } } }),
    );
    return page.items as OAuthClient[];
  }

  /** A new OAuth client: `client_secret` is in this answer only. */
  createOAuthClient(org: string, id: string, body: OAuthClientCreate = {}): Promise<NewOAuthClient> {
    return this.unwrap(
      this.raw.POST("/api/v1/orgs/{org}/consumers/{id}/oauth-clients", { params: { path: { org, id } }, body }),
    );
  }

  deleteOAuthClient(org: string, id: string, clientId: string): Promise<void> {
    return this.none(
      this.raw.DELETE("/api/v1/orgs/{org}/consumers/{id}/oauth-clients/{client_id}", {
        params: { path: { org, id, client_id: clientId } },
      }),
    );
  }

  // -- versions, diffs, rollback (APIs, connectors, consumers) ------------------------------------------
  async listVersions(org: string, kind: Kind, id: string): Promise<Version[]> {
    const params = { params: { path: { org, id } } };
    const page =
      kind === "apis"
        ? await this.unwrap(this.raw.GET("/api/v1/orgs/{org}/apis/{id}/versions", params))
        : kind === "connectors"
          ? await this.unwrap(this.raw.GET("/api/v1/orgs/{org}/connectors/{id}/versions", params))
          : await this.unwrap(this.raw.GET("/api/v1/orgs/{org}/consumers/{id}/versions", params));
    return page.items as Version[];
  }

  getVersion(org: string, kind: Kind, id: string, n: number): Promise<Version> {
    const params = { params: { path: { org, id, n } } };
    if (kind === "apis") return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/apis/{id}/versions/{n}", params));
    if (kind === "connectors") {
      return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/connectors/{id}/versions/{n}", params));
    }
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/consumers/{id}/versions/{n}", params));
  }

  diff(org: string, kind: Kind, id: string, a: number, b: number): Promise<Diff> {
    const params = { params: { path: { org, id, a, b } } };
    if (kind === "apis") return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/apis/{id}/versions/{a}/diff/{b}", params));
    if (kind === "connectors") {
      return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/connectors/{id}/versions/{a}/diff/{b}", params));
    }
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/consumers/{id}/versions/{a}/diff/{b}", params));
  }

  /** The diff's query form (`?from=a&to=b`), which APIs and connectors also answer. */
  diffQuery(org: string, kind: Exclude<Kind, "consumers">, id: string, from: number, to: number): Promise<Diff> {
    const params = { params: { path: { org, id }, query: { from, to } } };
    if (kind === "apis") return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/apis/{id}/diff", params));
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/connectors/{id}/diff", params));
  }

  /** A new version equal to version `to` (APIs and connectors). */
  rollback(org: string, kind: Exclude<Kind, "consumers">, id: string, to: number, version?: number): Promise<Api | Connector> {
    const init = { params: { path: { org, id }, header: ifMatch(version) }, body: { version: to } };
    if (kind === "apis") return this.unwrap<Api>(this.raw.POST("/api/v1/orgs/{org}/apis/{id}/rollback", init));
    return this.unwrap<Connector>(this.raw.POST("/api/v1/orgs/{org}/connectors/{id}/rollback", init));
  }

  // -- replay jobs (docs/replay.md) -------------------------------------------------------------
  /** Replay dead letters (by `ids` or a `filter`); `dry_run` says what would be replayed. */
  createReplay(org: string, body: ReplayCreate) {
    return this.unwrap(this.raw.POST("/api/v1/orgs/{org}/replays", { params: { path: { org } }, body }));
  }

  listReplays(org: string, query: Query<"/api/v1/orgs/{org}/replays", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/replays", { params: { path: { org }, query } }));
  }

  getReplay(org: string, id: string) {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/replays/{id}", { params: { path: { org, id } } }));
  }

  // -- alert rules and alerts (docs/alerts.md); org null: the global ones (global admin) ------------------
  listAlertRules(org: string | null, query: Query<"/api/v1/alert-rules", "get"> = {}) {
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alert-rules", { params: { query } }))
      : this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alert-rules", { params: { path: { org }, query } }));
  }

  createAlertRule(org: string | null, body: Schemas["AlertRuleCreate"]): Promise<Schemas["AlertRule"]> {
    return org === null
      ? this.unwrap(this.raw.POST("/api/v1/alert-rules", { body }))
      : this.unwrap(this.raw.POST("/api/v1/orgs/{org}/alert-rules", { params: { path: { org } }, body }));
  }

  getAlertRule(org: string | null, id: string): Promise<Schemas["AlertRule"]> {
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alert-rules/{id}", { params: { path: { id } } }))
      : this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alert-rules/{id}", { params: { path: { org, id } } }));
  }

  replaceAlertRule(org: string | null, id: string, body: Schemas["AlertRuleCreate"], version?: number): Promise<Schemas["AlertRule"]> {
    const header = ifMatch(version);
    return org === null
      ? this.unwrap(this.raw.PUT("/api/v1/alert-rules/{id}", { params: { path: { id }, header }, body }))
      : this.unwrap(this.raw.PUT("/api/v1/orgs/{org}/alert-rules/{id}", { params: { path: { org, id }, header }, body }));
  }

  updateAlertRule(org: string | null, id: string, body: Schemas["AlertRuleUpdate"], version?: number): Promise<Schemas["AlertRule"]> {
    const header = ifMatch(version);
    return org === null
      ? this.unwrap(this.raw.PATCH("/api/v1/alert-rules/{id}", { params: { path: { id }, header }, body }))
      : this.unwrap(this.raw.PATCH("/api/v1/orgs/{org}/alert-rules/{id}", { params: { path: { org, id }, header }, body }));
  }

  deleteAlertRule(org: string | null, id: string, version?: number): Promise<void> {
    const header = ifMatch(version);
    return org === null
      ? this.none(this.raw.DELETE("/api/v1/alert-rules/{id}", { params: { path: { id }, header } }))
      : this.none(this.raw.DELETE("/api/v1/orgs/{org}/alert-rules/{id}", { params: { path: { org, id }, header } }));
  }

  async listAlertRuleVersions(org: string | null, id: string): Promise<Version[]> {
    const page =
      org === null
        ? await this.unwrap(this.raw.GET("/api/v1/alert-rules/{id}/versions", { params: { path: { id } } }))
        : await this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alert-rules/{id}/versions", { params: { path: { org, id } } }));
    return page.items as Version[];
  }

  getAlertRuleVersion(org: string | null, id: string, n: number): Promise<Version> {
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alert-rules/{id}/versions/{n}", { params: { path: { id, n } } }))
      : this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alert-rules/{id}/versions/{n}", { params: { path: { org, id, n } } }));
  }

  diffAlertRule(org: string | null, id: string, a: number, b: number): Promise<Diff> {
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alert-rules/{id}/versions/{a}/diff/{b}", { params: { path: { id, a, b } } }))
      : this.unwrap(
          this.raw.GET("/api/v1/orgs/{org}/alert-rules/{id}/versions/{a}/diff/{b}", { params: { path: { org, id, a, b } } }),
        );
  }

  diffAlertRuleQuery(org: string | null, id: string, from: number, to: number): Promise<Diff> {
    const query = { from, to };
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alert-rules/{id}/diff", { params: { path: { id }, query } }))
      : this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alert-rules/{id}/diff", { params: { path: { org, id }, query } }));
  }

  rollbackAlertRule(org: string | null, id: string, to: number, version?: number): Promise<Schemas["AlertRule"]> {
    const header = ifMatch(version);
    const body = { version: to };
    return org === null
      ? this.unwrap(this.raw.POST("/api/v1/alert-rules/{id}/rollback", { params: { path: { id }, header }, body }))
      : this.unwrap(this.raw.POST("/api/v1/orgs/{org}/alert-rules/{id}/rollback", { params: { path: { org, id }, header }, body }));
  }

  listAlerts(org: string | null, query: Query<"/api/v1/alerts", "get"> = {}): Promise<Schemas["AlertPage"]> {
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alerts", { params: { query } }))
      : this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alerts", { params: { path: { org }, query } }));
  }

  getAlert(org: string | null, id: string): Promise<Schemas["Alert"]> {
    return org === null
      ? this.unwrap(this.raw.GET("/api/v1/alerts/{id}", { params: { path: { id } } }))
      : this.unwrap(this.raw.GET("/api/v1/orgs/{org}/alerts/{id}", { params: { path: { org, id } } }));
  }

  ackAlert(org: string | null, id: string): Promise<Schemas["Alert"]> {
    return org === null
      ? this.unwrap(this.raw.POST("/api/v1/alerts/{id}/ack", { params: { path: { id } } }))
      : this.unwrap(this.raw.POST("/api/v1/orgs/{org}/alerts/{id}/ack", { params: { path: { org, id } } }));
  }

  // -- audit, dead letters, metrics, request logs -----------------------------------------------------
  audit(query: Query<"/api/v1/audit", "get"> = {}): Promise<AuditPage> {
    return this.unwrap(this.raw.GET("/api/v1/audit", { params: { query } }));
  }

  listDeadLetters(org: string, query: Query<"/api/v1/orgs/{org}/dead-letters", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/dead-letters", { params: { path: { org }, query } }));
  }

  getDeadLetter(org: string, id: string): Promise<DeadLetter> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/dead-letters/{id}", { params: { path: { org, id } } }));
  }

  /** The dead letters of no organisation (global admin): undecodable bytes, a producer naming another
   * organisation's API, an API deleted while its call waited. */
  listUnattributedDeadLetters(query: Query<"/api/v1/dead-letters", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/dead-letters", { params: { query } }));
  }

  getUnattributedDeadLetter(id: string): Promise<DeadLetter> {
    return this.unwrap(this.raw.GET("/api/v1/dead-letters/{id}", { params: { path: { id } } }));
  }

  metrics(org: string, query: Query<"/api/v1/orgs/{org}/metrics", "get"> = {}): Promise<OrgMetrics> {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/metrics", { params: { path: { org }, query } }));
  }

  allMetrics(query: Query<"/api/v1/metrics", "get"> = {}): Promise<AllMetrics> {
    return this.unwrap(this.raw.GET("/api/v1/metrics", { params: { query } }));
  }

  listLogs(org: string, query: Query<"/api/v1/orgs/{org}/logs", "get"> = {}) {
    return this.unwrap(this.raw.GET("/api/v1/orgs/{org}/logs", { params: { path: { org }, query } }));
  }

  /**
   * The live 10 s metric windows (Server-Sent Events) of an organisation, or one API, until `signal`
   * aborts or the server ends the stream. fetch, not EventSource: EventSource cannot send the
   * Authorization header.
   */
  async streamMetrics(
    org: string,
    onPoint: (point: MetricPoint) => void,
    options: { api?: string; signal?: AbortSignal } = {},
  ): Promise<void> {
    // Aborting the signal ends the stream quietly, before or after the answer came: the promise resolves.
    const aborted = (e: unknown) => {
      if (options.signal?.aborted) return; // the AbortError, or the reason the signal was aborted with
      throw e;
    };
    if (options.signal?.aborted) return;
    let outcome;
    try {
      outcome = await this.raw.GET("/api/v1/orgs/{org}/metrics/stream", {
        params: { path: { org }, query: options.api ? { api: options.api } : {} },
        headers: { Accept: "text/event-stream" },
        parseAs: "stream",
        signal: options.signal,
      });
    } catch (e) {
      return aborted(e);
    }
    const { response, error } = outcome;
    if (!response.ok) {
      let body: unknown = error;
      try {
        body = await response.json();
      } catch {
        // the body was not JSON (or already read): the status says enough
      }
      this.fail(response.status, body);
    }
    if (!response.body) return;
    try {
      await readEvents(response.body, (event, data) => {
        if (event === "window") onPoint(JSON.parse(data) as MetricPoint);
      });
    } catch (e) {
      aborted(e);
    }
  }
}

/** Parse a Server-Sent Events stream, calling `onEvent(event, data)` for each complete event. */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: string, data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === "\r" ? 2 : 1));
      if (line === "") {
        if (data.length) onEvent(event, data.join("\n"));
        event = "message";
        data = [];
      } else if (line.startsWith(":")) {
        continue; // a comment (keep-alive)
      } else {
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "event") event = value;
        else if (name === "data") data.push(value);
      }
    }
  }
}
