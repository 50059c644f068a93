import { describe, expect, it } from "vitest";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { JunctionClient, JunctionError, describeNotApplied, etag, everyPage, readEvents } from "../src/index";

function stream(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(enc.encode(chunk));
      c.close();
    },
  });
}

describe("readEvents", () => {
  it("parses events split across chunks, skipping comments", async () => {
    const seen: [string, string][] = [];
    await readEvents(stream([": hello\n\nevent: win", "dow\ndata: {\"a\"", ":1}\n\n", "data: x\r\n\r\n"]), (e, d) =>
      seen.push([e, d]),
    );
    expect(seen).toEqual([
      ["window", '{"a":1}'],
      ["message", "x"],
    ]);
  });
});

describe("JunctionClient", () => {
  it("sends the bearer token and throws the error body as JunctionError", async () => {
    const calls: Request[] = [];
    let unauthorized = 0;
    const client = new JunctionClient({
      baseUrl: "http://control.test",
      token: () => "t0k",
      onUnauthorized: () => unauthorized++,
      fetch: async (input) => {
        const request = input as Request;
        calls.push(request);
        const status = new URL(request.url).pathname.endsWith("/orgs") ? 401 : 422;
        return new Response(
          JSON.stringify({ code: status === 401 ? "token_expired" : "invalid_input", message: "no",
            fields: [{ field: "auth.mode", message: "must be one of none" }] }),
          { status, headers: { "Content-Type": "application/json" } },
        );
      },
    });
    await expect(client.listOrgs()).rejects.toMatchObject({ status: 401, code: "token_expired" });
    expect(unauthorized).toBe(1);
    const err = await client.createApi("acme", { name: "x", methods: ["GET"], path: "/x", connector: "c" }).catch((e) => e);
    expect(err).toBeInstanceOf(JunctionError);
    expect(err.field("auth.mode")).toBe("must be one of none");
    expect(calls[0].headers.get("Authorization")).toBe("Bearer t0k");
    expect(calls[1].url).toBe("http://control.test/api/v1/orgs/acme/apis");
    expect(etag(3)).toBe('W/"3"');
  });

  it("keeps an id or a name inside its own path segment, and refuses dot segments", async () => {
    const urls: string[] = [];
    const client = new JunctionClient({
      baseUrl: "http://control.test",
      fetch: async (input) => {
        urls.push((input as Request).url);
        return new Response("{}", { status: 200, headers: { "Content-Type": "application/json" } });
      },
    });
    await client.getConsumer("acme", "shop front");
    await client.getApi("acme", "../consumers/shop");
    await client.getApi("acme", "a?x=1#b");
    expect(urls).toEqual([
      "http://control.test/api/v1/orgs/acme/consumers/shop%20front",
      "http://control.test/api/v1/orgs/acme/apis/..%2Fconsumers%2Fshop",
      "http://control.test/api/v1/orgs/acme/apis/a%3Fx%3D1%23b",
    ]);
    for (const dots of ["..", ".", ""]) {
      await expect(client.getConnector("acme", dots)).rejects.toThrow(/is not an id, a name or a slug/);
    }
    expect(urls).toHaveLength(3);
  });

  it("lists every organisation and user, following next_cursor page by page", async () => {
    const asked: URL[] = [];
    const client = new JunctionClient({
      baseUrl: "http://control.test",
      fetch: async (input) => {
        const url = new URL((input as Request).url);
        asked.push(url);
        const cursor = url.searchParams.get("cursor");
        const page = cursor === null ? { items: [{ id: "a" }, { id: "b" }], next_cursor: "c1" }
          : cursor === "c1" ? { items: [{ id: "c" }], next_cursor: null } : { items: [], next_cursor: null };
        return new Response(JSON.stringify(page), { status: 200, headers: { "Content-Type": "application/json" } });
      },
    });
    expect((await client.listOrgs()).map((o) => o.id)).toEqual(["a", "b", "c"]);
    expect(asked.map((u) => [u.pathname, u.searchParams.get("limit"), u.searchParams.get("cursor")])).toEqual([
      ["/api/v1/orgs", "1000", null],
      ["/api/v1/orgs", "1000", "c1"],
    ]);
    expect((await client.listUsers("acme")).map((u) => u.id)).toEqual(["a", "b", "c"]);
    expect(asked[3].pathname).toBe("/api/v1/orgs/acme/users");
  });

  it("everyPage stops at its cap, after the page that reaches it", async () => {
    const cursors: (string | undefined)[] = [];
    const page = async (cursor: string | undefined) => {
      cursors.push(cursor);
      return { items: [1, 2], next_cursor: `after-${cursors.length}` };
    };
    expect(await everyPage(page, 3)).toEqual([1, 2, 1, 2]);
    expect(cursors).toEqual([undefined, "after-1"]);
  });
});

describe("describeNotApplied", () => {
  it("names the missing services and the instances behind, or an unrelayed change", () => {
    const services = { ingress: { instances: 2, applied: 1 }, processors: { instances: 0, applied: 0 }, egress: { instances: 1, applied: 1 } };
    const answer = { applied: false, relayed: true, config_offset: 7, services, missing: ["processors"], waited_ms: 0 };
    expect(describeNotApplied(answer)).toBe("no processors instance is running; 1 of 2 ingress instances behind");
    expect(describeNotApplied({ ...answer, relayed: false })).toMatch(/not yet written the change to Kafka/);
    const killed = { ...answer, missing: [], services: { ...services, ingress: { instances: 2, applied: 1, silent: 1 } } };
    expect(describeNotApplied(killed)).toBe("1 of 2 ingress instances behind, 1 of them silent for over 2 s (stalled or killed)");
  });
});

describe("without an answer", () => {
  // A real server on a loopback port of this test's own (node:http): nothing is stubbed.
  async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<[Server, string]> {
    const server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
  }

  it("rejects an unreachable server with JunctionError code unreachable, naming the URL", async () => {
    const [server, url] = await listen(() => {});
    await new Promise((resolve) => server.close(resolve)); // the port is free again: connections are refused
    const err = await new JunctionClient({ baseUrl: url }).healthz().catch((e) => e);
    expect(err).toBeInstanceOf(JunctionError);
    expect(err).toMatchObject({ status: 0, code: "unreachable" });
    expect(err.message).toContain(`${url}/healthz`);
  });

  it("still rejects an aborted call with its AbortError", async () => {
    const [server, url] = await listen(() => {}); // never answers
    try {
      const controller = new AbortController();
      const call = new JunctionClient({ baseUrl: url }).raw.GET("/healthz", { signal: controller.signal });
      controller.abort();
      await expect(call).rejects.toMatchObject({ name: "AbortError" });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("streamMetrics resolves when its signal aborts, before or during the stream", async () => {
    let opened!: () => void;
    const streaming = new Promise<void>((resolve) => (opened = resolve));
    const [server, url] = await listen((req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(`event: window\ndata: {"t": 1}\n\n`);
      opened();
    });
    try {
      const client = new JunctionClient({ baseUrl: url });
      const points: unknown[] = [];
      const controller = new AbortController();
      const stream = client.streamMetrics("acme", (p) => points.push(p), { signal: controller.signal });
      await streaming;
      await expect.poll(() => points.length).toBe(1);
      controller.abort();
      await expect(stream).resolves.toBeUndefined();
      const before = new AbortController();
      before.abort();
      await expect(client.streamMetrics("acme", () => {}, { signal: before.signal })).resolves.toBeUndefined();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
