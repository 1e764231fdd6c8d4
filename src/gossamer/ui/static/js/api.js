// The control plane's API with the operator token held in memory only (docs/ui.md).
// No cookie and no storage: a cross-site request carries no credential, and a reload asks
// again (or reads a #token= the demo printed).

let token = null;

export class Unauthorized extends Error {}

/** Takes a token from the address's #token= fragment (never sent to the server) and
 *  removes it from the address bar and history. */
export function tokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const found = params.get("token");
  if (found) {
    history.replaceState(null, "", location.pathname + location.search);
    token = found.trim();
  }
  return token !== null;
}

export function setToken(value) {
  token = value.trim() || null;
}

export function hasToken() {
  return token !== null;
}

/** GET a path of this origin's API with the token; JSON (or text) back. */
export async function get(path, params = {}, { text = false } = {}) {
  const query = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const url = query.toString() ? `${path}?${query}` : path;
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${token}` },
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 401) {
    token = null;
    throw new Unauthorized(await reason(response));
  }
  if (!response.ok) {
    throw new Error(`${path}: ${response.status} ${await reason(response)}`);
  }
  return text ? response.text() : response.json();
}

async function reason(response) {
  try {
    const body = await response.json();
    return (body.errors || [body.detail || response.statusText]).join("; ");
  } catch {
    return response.statusText;
  }
}
