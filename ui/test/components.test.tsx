import { JunctionError } from "@junction/sdk";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";
import { describe, expect, it, vi } from "vitest";
import { ScriptEditor } from "../src/components/ScriptEditor";
import { DiffTable } from "../src/components/Versions";
import { LoginPage } from "../src/pages/Login";
import { decodeClaims, SessionProvider } from "../src/session";
import { ErrorMessage, Field, fieldError } from "../src/ui";

const invalid = new JunctionError(422, {
  code: "invalid_input", message: "invalid input", request_id: "r1",
  fields: [{ field: "timeout_ms", message: "must be at least 1" }, { field: "auth.mode", message: "must be one of none" },
    { field: "other", message: "is odd" }],
});

describe("field errors", () => {
  it("finds a field's message, and its children's", () => {
    expect(fieldError(invalid, "timeout_ms")).toBe("must be at least 1");
    expect(fieldError(invalid, "auth")).toBe("auth.mode: must be one of none");
    expect(fieldError(invalid, "name")).toBeUndefined();
    expect(fieldError(new Error("x"), "name")).toBeUndefined();
  });

  it("labels the input and ties the error to it", () => {
    render(<Field label="Timeout (ms)" error="must be at least 1">{(p) => <input {...p} />}</Field>);
    const input = screen.getByLabelText("Timeout (ms)");
    expect(input).toHaveAttribute("aria-invalid", "true");
    expect(input).toHaveAccessibleDescription("must be at least 1");
  });

  it("shows the fields no form field claimed, and never swallows an error", () => {
    render(<ErrorMessage error={invalid} claimed={["timeout_ms", "auth"]} />);
    expect(screen.getByRole("alert")).toHaveTextContent("other: is odd");
    expect(screen.getByRole("alert")).toHaveTextContent("422 invalid_input, request r1");
    render(<ErrorMessage error={new TypeError("Failed to fetch")} />);
    expect(screen.getByText(/Could not reach the management API/)).toBeInTheDocument();
  });
});

describe("DiffTable", () => {
  it("puts the two versions side by side", () => {
    render(<DiffTable diff={{ id: "a", from: 1, to: 2, changes: [{ field: "timeout_ms", before: 5000, after: 7000 }] }} />);
    expect(screen.getByRole("columnheader", { name: "Version 1" })).toBeInTheDocument();
    expect(screen.getByRole("row", { name: /timeout_ms 5000 7000/ })).toBeInTheDocument();
  });
});

describe("ScriptEditor", () => {
  it("marks the error line", async () => {
    const { container, rerender } = render(
      <ScriptEditor value={"def f(r, c):\n    return (\n"} labelledBy="l" errorLine={2} errorMessage="never closed" />,
    );
    await waitFor(() => expect(container.querySelector('.cm-errorLine[data-error-line="2"]')).not.toBeNull());
    rerender(<ScriptEditor value={"def f(r, c):\n    return r\n"} labelledBy="l" errorLine={null} />);
    await waitFor(() => expect(container.querySelector(".cm-errorLine")).toBeNull());
  });
});

describe("LoginPage", () => {
  function token(claims: object): string {
    const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "");
    return `${b64({ alg: "HS256" })}.${b64(claims)}.sig`;
  }

  it("decodes a token's claims", () => {
    const t = token({ sub: "u", email: "a@b", role: "org_viewer", org: "o", exp: 9999999999 });
    expect(decodeClaims(t)?.role).toBe("org_viewer");
    expect(decodeClaims("nope")).toBeNull();
  });

  it("logs in with the keyboard only and shows a wrong password as a message", async () => {
    const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
      const request = input as Request;
      const body = await request.json();
      if (body.password !== "right-password") {
        return new Response(JSON.stringify({ code: "invalid_credentials", message: "wrong email or password" }),
          { status: 401, headers: { "Content-Type": "application/json" } });
      }
      const t = token({ sub: "u", email: body.email, role: "org_admin", org: "o", exp: Date.now() / 1000 + 3600 });
      return new Response(JSON.stringify({ access_token: t, token_type: "bearer", expires_in: 3600 }),
        { status: 200, headers: { "Content-Type": "application/json" } });
    });
    vi.stubGlobal("fetch", fetchMock);
    const user = userEvent.setup();
    render(
      <MemoryRouter initialEntries={["/login"]}>
        <SessionProvider baseUrl="http://control.test">
          <LoginPage />
        </SessionProvider>
      </MemoryRouter>,
    );
    expect(screen.getByLabelText("E-mail")).toHaveFocus();
    await user.keyboard("admin@example.com");
    await user.tab();
    await user.keyboard("wrong{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent("wrong email or password");
    await user.clear(screen.getByLabelText("Password"));
    await user.type(screen.getByLabelText("Password"), "right-password{Enter}");
    await waitFor(() => expect(sessionStorage.getItem("junction.token")).toBeTruthy());
    expect(fetchMock).toHaveBeenCalledTimes(2);
    vi.unstubAllGlobals();
  });
});
