/**
 * The session: the bearer token (kept in sessionStorage, so a reload stays logged in and closing the
 * tab logs out), what its claims say (role, organisation, expiry), and the SDK client that sends it.
 *
 * When the token expires, or any call answers 401, the session ends and the app goes back to the
 * log-in page, remembering the page it was on; logging in again returns there.
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
  /** why the last session ended: "expired" (shown on the log-in page) or "logout" */
  ended: string | null;
  login(email: string, password: string): Promise<void>;
  /** carry on with a new token (after a password change) */
  adopt(token: string): void;
  logout(): Promise<void>;
  /** the page to return to after logging in (forgotten once logged in) */
  nextPage(): string | null;
  canWrite: boolean;
  isGlobal: boolean;
}

const SessionContext = createContext<Session | null>(null);

function storedToken(): string | null {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const claims = token ? decodeClaims(token) : null;
  return claims && claims.exp * 1000 > Date.now() ? token : null;
}

export function SessionProvider({ children, baseUrl = "" }: { children: ReactNode; baseUrl?: string }) {
  const [token, setToken] = useState<string | null>(storedToken);
  const [ended, setEnded] = useState<string | null>(null);
  const tokenRef = useRef(token);
  tokenRef.current = token;

  const end = useCallback((reason: string | null) => {
    if (tokenRef.current && reason === "expired") {
      sessionStorage.setItem(NEXT_KEY, window.location.pathname + window.location.search);
    }
    sessionStorage.removeItem(TOKEN_KEY);
    tokenRef.current = null;
    setToken(null);
    setEnded(reason);
  }, []);

  const client = useMemo(
    () =>
      new JunctionClient({
        baseUrl,
        token: () => tokenRef.current,
        // A 401 with a token is an expired or revoked session; without one it is a wrong log-in.
        onUnauthorized: () => {
          if (tokenRef.current) end("expired");
        },
      }),
    [baseUrl, end],
  );

  const claims = useMemo(() => (token ? decodeClaims(token) : null), [token]);

  useEffect(() => {
    if (!claims) return;
    const ms = claims.exp * 1000 - Date.now();
    const timer = window.setTimeout(() => end("expired"), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => window.clearTimeout(timer);
  }, [claims, end]);

  const value = useMemo<Session>(
    () => ({
      token,
      claims,
      client,
      ended,
      async login(email, password) {
        const t = await client.login(email, password);
        sessionStorage.removeItem(NEXT_KEY);
        sessionStorage.setItem(TOKEN_KEY, t.access_token);
        tokenRef.current = t.access_token;
        setEnded(null);
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
      nextPage() {
        const next = sessionStorage.getItem(NEXT_KEY);
        return next && next.startsWith("/") && !next.startsWith("//") && next !== "/login" ? next : null;
      },
      canWrite: claims?.role === "global_admin" || claims?.role === "org_admin",
      isGlobal: claims?.role === "global_admin",
    }),
    [token, claims, client, ended, end],
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
