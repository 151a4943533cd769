// Hooks in the original runner's calling convention, in TypeScript (types are stripped on a
// Node that cannot do it itself by the `typescript` package of tests/package.json).

interface Issue {
  path: string;
  message: string;
}
interface Response {
  status: number;
  headers: Record<string, string>;
  body: any;
}
interface MockContext {
  capturedResponse: Response;
  mockName: string;
  env: Record<string, string>;
}

// Mock-response rewrite: the captured quote, at the price the suite's env names.
export function quoteFromEnv({ capturedResponse, env }: MockContext): Partial<Response> {
  return { body: { ...capturedResponse.body, quote: Number(env.QUOTE) } };
}

// Body assertion: the total is the order's amount plus the rewritten quote.
export function totalIncludesQuote({ actual, env }: { actual: any; env: Record<string, string> }): Issue[] {
  const want = 1000 + Number(env.QUOTE);
  return actual?.total === want ? [] : [{ path: "$.total", message: `expected ${want}, got ${actual?.total}` }];
}

// Body assertion the recorded service fails: its carrier is UPS.
export function carrierIsFedex({ actual }: { actual: any }): Issue[] {
  return actual?.carrier === "fedex" ? [] : [{ path: "$.carrier", message: `expected fedex, got ${actual?.carrier}` }];
}
