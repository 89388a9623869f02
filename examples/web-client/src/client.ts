// A typed Stockroom client for a web app: every path, parameter, body and answer is checked by
// the compiler against the types generated from the server's /openapi.json (src/schema.d.ts).
import createClient, { type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type Problem = components["schemas"]["Problem"];
export type TokenPair = components["schemas"]["TokenPair"];
export type StockroomClient = ReturnType<typeof createClient<paths>>;

/** Holds the token pair and renews it: the access token is short-lived, the refresh token is
 * single-use (a reused one revokes its whole family, so it is replaced after every refresh). */
export class Session {
  private tokens: TokenPair | undefined;
  private refreshing: Promise<boolean> | undefined;

  constructor(private readonly baseUrl: string) {}

  get accessToken(): string | undefined {
    return this.tokens?.access_token;
  }

  async login(email: string, password: string): Promise<void> {
    const { data, error } = await this.anonymous().POST("/api/v1/auth/login-json", {
      body: { email, password },
    });
    if (error) throw new ProblemError(error);
    this.tokens = data;
  }

  /** Exchanges the refresh token for a new pair. Concurrent callers share one exchange: two
   * exchanges of the same refresh token would look like token theft to the server. */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.exchange().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async exchange(): Promise<boolean> {
    if (!this.tokens) return false;
    const { data } = await this.anonymous().POST("/api/v1/auth/refresh", {
      body: { refresh_token: this.tokens.refresh_token },
    });
    this.tokens = data;
    return data !== undefined;
  }

  private anonymous(): StockroomClient {
    return createClient<paths>({ baseUrl: this.baseUrl });
  }
}

/** A problem answer (RFC 9457) as an exception; `code` is the stable thing to branch on. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.code}: ${problem.detail}`);
  }

  get code(): string {
    return this.problem.code;
  }
}

/** The bearer token on every request; on a 401, one refresh and one retry of the request. */
function authentication(session: Session): Middleware {
  // A sent request's body is spent: keep a copy to replay after a refresh.
  const copies = new WeakMap<Request, Request>();
  return {
    onRequest({ request }) {
      if (session.accessToken) {
        request.headers.set("Authorization", `Bearer ${session.accessToken}`);
      }
      copies.set(request, request.clone());
      return request;
    },
    async onResponse({ request, response, options }) {
      const copy = copies.get(request);
      if (response.status !== 401 || !copy || !(await session.refresh())) return response;
      copy.headers.set("Authorization", `Bearer ${session.accessToken ?? ""}`);
      return options.fetch(copy);
    },
  };
}

export function createStockroomClient(baseUrl: string, session: Session): StockroomClient {
  const client = createClient<paths>({ baseUrl });
  client.use(authentication(session));
  return client;
}

/** A fresh key for one logical write: retries of that write reuse it, a new write never does. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
