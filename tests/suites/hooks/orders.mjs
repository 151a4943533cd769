// Hooks in the original runner's calling convention, in JavaScript.

// Request transform: a partial request; the members returned replace the request's.
export function upperCaseCurrency({ request }) {
  const order = JSON.parse(request.body);
  return { body: JSON.stringify({ ...order, currency: order.currency.toUpperCase() }) };
}

// Body assertion for the shipping outage: the service names what failed.
export function blamesShipping({ actual }) {
  return String(actual?.error ?? "").includes("shipping answered 503")
    ? []
    : [`expected the error to blame shipping's 503, got ${JSON.stringify(actual)}`];
}
