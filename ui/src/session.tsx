/**
 * The session: the bearer token (kept in sessionStorage, so a reload stays logged in and closing the
 * tab logs out), what its claims say (role, organisation, expiry), and the SDK client that sends it.
 *
 * A couple of minutes before the token expires the page says so (`expiresSoon`), and the user may log in
 * again without leaving it (`relogin`, the log-in dialog of components/SessionDialog.tsx); once it has
 * expired the dialog opens over the page by itself: the page, and its unsaved edits, stay as they are.
 * (The management API has no token refresh: a new token takes the password again.)
 *
 * When a call answers 401 with a token that has not expired (revoked: logged out elsewhere, the user's
 * password changed), the same dialog opens over the page (`revoked`): logging in again as the same user
 * carries on with the page and its unsaved edits; "Log out" goes to the log-in page, where another user
 * goes to their own start page.
 */
import { JunctionClient } from "@junction/sdk";
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";

export type Role = "global_admin" | "org_admin" | "org_viewer";

export interface Claims {
  sub: string;
  email: string;
  role: Role;
  org: string | null;
  exp: number;
}

const TOKEN_KEY = "junction.token";
const NEXT_KEY = "junction.next";
/** How long before the token's expiry the page warns. */
export const WARN_BEFORE_MS = 2 * 60 * 1000;

/** The page an ended session was on, and whose session it was (only that user returns there). */
interface NextPage {
  sub: string;
  path: string;
}

function readNext(): NextPage | null {
  try {
    const next = JSON.parse(sessionStorage.getItem(NEXT_KEY) ?? "null") as NextPage | null;
    return next && typeof next.sub === "string" && typeof next.path === "string" ? next : null;
  } catch {
    return null;
  }
}

function safePath(path: string | null | undefined): string | null {
  return path && path.startsWith("/") && !path.startsWith("//") && path !== "/login" ? path : null;
}

/** The claims of a JWT (not verified: the API does that); null when it is not one. */
export function decodeClaims(token: string): Claims | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const claims = JSON.parse(json) as Claims;
    return typeof claims.exp === "number" && typeof claims.role === "string" ? claims : null;
  } catch {
    return null;
  }
}

export interface Session {
  token: string | null;
  claims: Claims | null;
  client: JunctionClient;
  /** why the last session ended: "logout" (log-in then starts afresh), or null */
  ended: string | null;
  /** the token expires within WARN_BEFORE_MS (the page shows a banner) */
  expiresSoon: boolean;
  /** the token has expired while the page stays open: the log-in dialog is over it */
  expired: boolean;
  /** the token was refused before its expiry (revoked): the log-in dialog is over the page, as for `expired` */
  revoked: boolean;
  login(email: string, password: string): Promise<void>;
  /** log in again as the session's own user, staying on the page (a new token, the same user) */
  relogin(password: string): Promise<void>;
  /** carry on with a new token (after a password change) */
  adopt(token: string): void;
  logout(): Promise<void>;
  /** where to go once logged in: the page the same user's ended session was on; else `from` (the page that
   * sent a logged-out visitor to log-in) when no other user's session ended here; else the start page */
  returnPage(from?: string | null): string;
  canWrite: boolean;
  isGlobal: boolean;
}

const SessionContext = createContext<Session | null>(null);

function storedToken(): string | null {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const claims = token ? decodeClaims(token) : null;
  if (claims && claims.exp * 1000 <= Date.now()) {
    // Reloaded after it expired: log-in returns here, for this user only.
    const path = window.location.pathname + window.location.search;
    if (safePath(path)) sessionStorage.setItem(NEXT_KEY, JSON.stringify({ sub: claims.sub, path } satisfies NextPage));
    sessionStorage.removeItem(TOKEN_KEY);
  }
  return claims && claims.exp * 1000 > Date.now() ? token : null;
}

export function SessionProvider({ children, baseUrl = "" }: { children: ReactNode; baseUrl?: string }) {
  const [token, setToken] = useState<string | null>(storedToken);
  const [ended, setEnded] = useState<string | null>(null);
  const [expiresSoon, setExpiresSoon] = useState(false);
  const [expired, setExpired] = useState(false);
  const [revoked, setRevoked] = useState(false);
  const tokenRef = useRef(token);
  tokenRef.current = token;
  // Where the last log-in goes: computed when it succeeds, from the ended session's page and user.
  const returnRef = useRef<{ path: string | null; otherUser: boolean } | null>(null);

  const end = useCallback((reason: string | null) => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenRef.current = null;
    setToken(null);
    setEnded(reason);
    setExpired(false);
    setRevoked(false);
    setExpiresSoon(false);
  }, []);

  const client = useMemo(
    () =>
      new JunctionClient({
        baseUrl,
        token: () => tokenRef.current,
        // A 401 with a token is an expired or revoked session; without one, or answering a log-in, a wrong
        // password. Either way the page stays as it is, under the log-in dialog.
        onUnauthorized: (error) => {
          if (!tokenRef.current || error.code === "invalid_credentials") return;
          const claims = decodeClaims(tokenRef.current);
          if (error.code === "token_expired" || (claims && claims.exp * 1000 <= Date.now())) setExpired(true);
          else setRevoked(true);
        },
      }),
    [baseUrl],
  );

  const claims = useMemo(() => (token ? decodeClaims(token) : null), [token]);

  useEffect(() => {
    setExpired(false);
    setRevoked(false);
    setExpiresSoon(false);
    if (!claims) return;
    const at = (ms: number, fn: () => void) => window.setTimeout(fn, Math.max(0, Math.min(ms - Date.now(), 2 ** 31 - 1)));
    const warn = at(claims.exp * 1000 - WARN_BEFORE_MS, () => setExpiresSoon(true));
    const expire = at(claims.exp * 1000, () => setExpired(true));
    return () => {
      window.clearTimeout(warn);
      window.clearTimeout(expire);
    };
  }, [claims]);

  const value = useMemo<Session>(
    () => ({
      token,
      claims,
      client,
      ended,
      expiresSoon,
      expired,
      revoked,
      async login(email, password) {
        const t = await client.login(email, password);
        const next = readNext();
        const sub = decodeClaims(t.access_token)?.sub;
        returnRef.current = next ? { path: next.sub === sub ? safePath(next.path) : null, otherUser: next.sub !== sub } : null;
        sessionStorage.removeItem(NEXT_KEY);
        sessionStorage.setItem(TOKEN_KEY, t.access_token);
        tokenRef.current = t.access_token;
        setEnded(null);
        setToken(t.access_token);
      },
      async relogin(password) {
        const email = claims?.email;
        if (!email) throw new Error("no session to renew");
        const t = await client.login(email, password);
        if (decodeClaims(t.access_token)?.sub !== claims?.sub) throw new Error("that log-in is another user's");
        sessionStorage.setItem(TOKEN_KEY, t.access_token);
        tokenRef.current = t.access_token;
        setToken(t.access_token);
      },
      adopt(t) {
        sessionStorage.setItem(TOKEN_KEY, t);
        tokenRef.current = t;
        setToken(t);
      },
      async logout() {
        try {
          await client.logout();
        } finally {
          sessionStorage.removeItem(NEXT_KEY);
          end("logout");
        }
      },
      returnPage(from) {
        const back = returnRef.current;
        if (back) return back.path ?? "/";
        const next = readNext();
        const sub = claims?.sub;
        if (next) return (next.sub === sub && safePath(next.path)) || "/";
        return safePath(from) ?? "/";
      },
      canWrite: claims?.role === "global_admin" || claims?.role === "org_admin",
      isGlobal: claims?.role === "global_admin",
    }),
    [token, claims, client, ended, end, expiresSoon, expired, revoked],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}

export function useClient(): JunctionClient {
  return useSession().client;
}
