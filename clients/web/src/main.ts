// The console's shell: navigation, routing by the URL's fragment, and sign-in with a token.

import { broker, describe, needsSignIn, session } from "./api";
import { fill, h } from "./dom";
import { editorView } from "./editor";
import { jobView } from "./job";
import { jobsView } from "./jobs";

const main = document.getElementById("main") as HTMLElement;
const account = document.getElementById("account") as HTMLElement;
// Streams of the page on screen stop when another page replaces it.
let page = new AbortController();

function signInView(reason: string): void {
  page.abort();
  const token = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-label": "Token",
  });
  const form = h(
    "form",
    { class: "sign-in" },
    h("h1", {}, "Sign in"),
    h("p", {}, "The broker asks for a token. It is kept in this tab only, until you sign out."),
    h("p", { class: "error", role: "alert", id: "sign-in-reason" }, reason),
    h("label", {}, "Token ", token),
    h("button", { class: "primary", type: "submit", id: "sign-in" }, "Sign in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    session.signIn(token.value.trim());
    start();
  });
  fill(main, form);
  renderAccount();
  token.focus();
}

function askToSignIn(): void {
  const had = session.token() !== null;
  session.signOut();
  signInView(had ? "The broker did not accept that token." : "");
}

function renderAccount(): void {
  if (session.token() === null) {
    fill(account);
    return;
  }
  const signOut = h("button", { id: "sign-out", class: "link" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.signOut();
    signInView("");
  });
  fill(account, signOut);
}

function route(): void {
  page.abort();
  page = new AbortController();
  renderAccount();
  const [path, search = ""] = window.location.hash.replace(/^#/, "").split("?", 2);
  const query = new URLSearchParams(search);
  const job = /^\/jobs\/([^/]+)$/.exec(path ?? "");
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    link.classList.toggle("active", link.dataset.section === (path?.startsWith("/jobs") ? "jobs" : "sql"));
  }
  if (job?.[1]) {
    let id: string;
    try {
      id = decodeURIComponent(job[1]);
    } catch {
      fill(main, h("p", { class: "error", role: "alert" }, `Not a job id: ${job[1]}`));
      return;
    }
    jobView(main, id, page.signal, askToSignIn);
  } else if (path === "/jobs") {
    jobsView(main, query, askToSignIn);
  } else {
    editorView(main, askToSignIn);
  }
}

/** A first call tells whether the broker takes the token (or needs none) before anything shows. */
function start(): void {
  broker
    .listJobs({ pageSize: 1 })
    .then(route)
    .catch((error: unknown) => {
      if (needsSignIn(error)) {
        askToSignIn();
      } else {
        route();
        console.warn(`flinkbroker: ${describe(error)}`);
      }
    });
}

window.addEventListener("hashchange", route);
start();
