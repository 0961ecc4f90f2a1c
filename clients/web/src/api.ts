// The broker's JobService over gRPC-Web on the page's own origin, with the signed-in token.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { JobService } from "./gen/flinkbroker/v1/broker_pb";

// The token is the only thing the console keeps in the browser, and only for this tab's session.
const TOKEN_KEY = "flinkbroker.token";

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

const bearer: Interceptor = (next) => async (request) => {
  const token = session.token();
  if (token) {
    request.header.set("authorization", `Bearer ${token}`);
  }
  return next(request);
};

export const broker = createClient(
  JobService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [bearer] }),
);

/** Whether the broker refused the call for want of a valid credential. */
export function needsSignIn(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unauthenticated;
}

/** Whether the call ended because the page stopped it (navigation, a new stream). */
export function wasAborted(error: unknown): boolean {
  return (
    (error instanceof ConnectError && error.code === Code.Canceled) ||
    (error instanceof DOMException && error.name === "AbortError")
  );
}

/** One line naming what went wrong: the gRPC code and the broker's message. */
export function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    const code = Code[error.code] ?? String(error.code);
    return `${code}: ${error.rawMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Tells the person why a call failed, in `message` (after `prefix`), or asks them to sign in
 * when the broker wants a token.
 */
export function report(error: unknown, message: HTMLElement, onSignIn: () => void, prefix = ""): void {
  if (needsSignIn(error)) onSignIn();
  else message.textContent = `${prefix}${describe(error)}`;
}
