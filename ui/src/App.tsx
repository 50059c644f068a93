import type { Org } from "@junction/sdk";
import { useEffect, useMemo, type ReactNode } from "react";
import { SessionExpiry } from "./components/SessionDialog";
import { OrgListContext } from "./orgList";
import { Navigate, NavLink, Outlet, Route, Routes, useLocation, useNavigate, useParams } from "react-router";
import { AccountPage } from "./pages/Account";
import { AlertRuleEditPage, AlertRulesPage } from "./pages/AlertRules";
import { AlertsPage } from "./pages/Alerts";
import { ApiEditPage, ApisPage } from "./pages/Apis";
import { AuditPage } from "./pages/Audit";
import { ConnectorEditPage, ConnectorsPage } from "./pages/Connectors";
import { ConsumerPage, ConsumersPage } from "./pages/Consumers";
import { DashboardPage } from "./pages/Dashboard";
import { DeadLettersPage } from "./pages/DeadLetters";
import { LoginPage } from "./pages/Login";
import { LogsPage } from "./pages/Logs";
import { OrgPoliciesPage, OrgsPage } from "./pages/Orgs";
import { ReplayPage, ReplaysPage } from "./pages/Replays";
import { InstancesPage } from "./pages/Instances";
import { SecurityEventsPage } from "./pages/SecurityEvents";
import { UsersPage } from "./pages/Users";
import { useSession } from "./session";
import { ErrorMessage, Loading, useLoad } from "./ui";

const ROLE_NAMES = { global_admin: "Global admin", org_admin: "Organisation admin", org_viewer: "Viewer" };

export function App() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route element={<RequireSession />}>
        <Route element={<Layout />}>
          <Route index element={<Home />} />
          <Route path="admin/orgs" element={<GlobalOnly><OrgsPage /></GlobalOnly>} />
          <Route path="admin/security" element={<GlobalOnly><SecurityEventsPage /></GlobalOnly>} />
          <Route path="admin/alert-rules" element={<GlobalOnly><AlertRulesPage /></GlobalOnly>} />
          <Route path="admin/alert-rules/new" element={<GlobalOnly><AlertRuleEditPage key="new" /></GlobalOnly>} />
          <Route path="admin/alert-rules/:id" element={<GlobalOnly><AlertRuleEditPage key="edit" /></GlobalOnly>} />
          <Route path="admin/alerts" element={<GlobalOnly><AlertsPage /></GlobalOnly>} />
          <Route path="admin/instances" element={<GlobalOnly><InstancesPage /></GlobalOnly>} />
          <Route path="account" element={<AccountPage />} />
          <Route path="orgs/:org">
            <Route index element={<Navigate to="apis" replace />} />
            <Route path="apis" element={<ApisPage />} />
            <Route path="apis/new" element={<ApiEditPage key="new" />} />
            <Route path="apis/:id" element={<ApiEditPage key="edit" />} />
            <Route path="connectors" element={<ConnectorsPage />} />
            <Route path="connectors/new" element={<ConnectorEditPage key="new" />} />
            <Route path="connectors/:id" element={<ConnectorEditPage key="edit" />} />
            <Route path="consumers" element={<ConsumersPage />} />
            <Route path="consumers/:id" element={<ConsumerPage />} />
            <Route path="users" element={<UsersPage />} />
            <Route path="policies" element={<OrgPoliciesPage />} />
            <Route path="audit" element={<AuditPage />} />
            <Route path="dashboard" element={<DashboardPage />} />
            <Route path="logs" element={<LogsPage />} />
            <Route path="dead-letters" element={<DeadLettersPage />} />
            <Route path="replays" element={<ReplaysPage />} />
            <Route path="replays/:id" element={<ReplayPage />} />
            <Route path="alert-rules" element={<AlertRulesPage />} />
            <Route path="alert-rules/new" element={<AlertRuleEditPage key="new" />} />
            <Route path="alert-rules/:id" element={<AlertRuleEditPage key="edit" />} />
            <Route path="alerts" element={<AlertsPage />} />
          </Route>
          <Route path="*" element={<NotFound />} />
        </Route>
      </Route>
    </Routes>
  );
}

function RequireSession() {
  const { token, ended } = useSession();
  const location = useLocation();
  // After a log-out the next user starts afresh; otherwise log-in returns to this page.
  if (!token) return <Navigate to="/login" replace state={ended === "logout" ? null : { from: location.pathname + location.search }} />;
  return <Outlet />;
}

function GlobalOnly({ children }: { children: ReactNode }) {
  const { isGlobal } = useSession();
  return isGlobal ? <>{children}</> : <p role="alert">Only a global admin may open this page.</p>;
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no such page. <NavLink to="/">Go to the start page</NavLink>.
      </p>
    </section>
  );
}

/** The start page: a global admin's organisations, or the user's own organisation. */
function Home() {
  const { isGlobal, client } = useSession();
  const navigate = useNavigate();
  const orgs = useLoad(() => (isGlobal ? Promise.resolve([] as Org[]) : client.listOrgs()), [isGlobal]);
  useEffect(() => {
    if (!isGlobal && orgs.data?.length) navigate(`/orgs/${orgs.data[0].slug}/apis`, { replace: true });
  }, [isGlobal, orgs.data, navigate]);
  if (isGlobal) return <Navigate to="/admin/orgs" replace />;
  if (orgs.error) return <ErrorMessage error={orgs.error} />;
  return <Loading what="your organisation" />;
}

/** An organisation's pages, once it is known to exist for this user: one it cannot see (404) shows the
 * message only, none of the page's lists, forms or write buttons. */
function OrgGate({ org }: { org: string }) {
  const { client } = useSession();
  const found = useLoad(() => client.getOrg(org), [org, client]);
  if (found.error) return <ErrorMessage error={found.error} />;
  if (!found.data || found.data.slug !== org) return <Loading what="the organisation" />;
  return <Outlet />;
}

function Layout() {
  const session = useSession();
  const { claims, isGlobal, client, canWrite } = session;
  const { org } = useParams();
  const navigate = useNavigate();
  const location = useLocation();
  const orgs = useLoad(() => client.listOrgs(), [client]);
  const orgList = useMemo(() => ({ reload: orgs.reload }), [orgs.reload]);
  // An organisation the list does not hold yet (made elsewhere since it loaded): load the list again.
  const missing = !!org && !!orgs.data && !orgs.data.some((o) => o.slug === org);
  useEffect(() => {
    if (missing) orgs.reload();
  }, [missing, org, orgs.reload]);

  const section = location.pathname.match(/^\/orgs\/[^/]+\/([^/]+)/)?.[1] ?? "apis";
  const orgLinks: [string, string][] = [
    ["apis", "APIs"],
    ["connectors", "Connectors"],
    ["consumers", "Consumers"],
    ["users", "Users"],
    ["policies", "Caller policies"],
    ["audit", "Audit log"],
    ["dashboard", "Dashboard"],
    ["logs", "Request logs"],
    ["dead-letters", "Dead letters"],
    ["replays", "Replay jobs"],
    ["alert-rules", "Alert rules"],
    ["alerts", "Alerts"],
  ];
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/" className="brand">
          Junction
        </NavLink>
        {(isGlobal || (orgs.data?.length ?? 0) > 1) && (
          // The label holds its word only: wrapped around the select, every organisation's name would be
          // part of the select's label, and of any other field's label search ("Name" finds an org "Name…").
          <div className="org-switch">
            <label htmlFor="org-switch">Organisation</label>
            <select
              id="org-switch"
              value={org ?? ""}
              onChange={(e) => e.target.value && navigate(`/orgs/${e.target.value}/${section}`)}
            >
              <option value="">{isGlobal ? "— choose —" : ""}</option>
              {orgs.data?.map((o) => (
                <option key={o.id} value={o.slug}>
                  {o.name} ({o.slug}){o.enabled ? "" : " — disabled"}
                </option>
              ))}
            </select>
          </div>
        )}
        <div className="whoami">
          <NavLink to="/account" title="Your account">
            {claims?.email}
          </NavLink>{" "}
          <span className="badge">{claims ? ROLE_NAMES[claims.role] : ""}</span>
          <button type="button" onClick={() => session.logout().finally(() => navigate("/login"))}>
            Log out
          </button>
        </div>
      </header>
      <nav className="sidenav" aria-label="Sections">
        {isGlobal && (
          <ul>
            <li>
              <NavLink to="/admin/orgs">Organisations</NavLink>
            </li>
            <li>
              <NavLink to="/admin/security">Security events</NavLink>
            </li>
            <li>
              <NavLink to="/admin/alert-rules">Global alert rules</NavLink>
            </li>
            <li>
              <NavLink to="/admin/alerts">Global alerts</NavLink>
            </li>
            <li>
              <NavLink to="/admin/instances">Instances</NavLink>
            </li>
          </ul>
        )}
        {org && (
          <ul>
            {orgLinks.filter(([to]) => canWrite || to !== "consumers").map(([to, label]) => (
              <li key={to}>
                <NavLink to={`/orgs/${org}/${to}`}>{label}</NavLink>
              </li>
            ))}
          </ul>
        )}
      </nav>
      <main id="main" tabIndex={-1}>
        <SessionExpiry />
        <ErrorMessage error={orgs.error} />
        <OrgListContext.Provider value={orgList}>
          {org ? <OrgGate org={org} /> : <Outlet />}
        </OrgListContext.Provider>
      </main>
    </div>
  );
}
