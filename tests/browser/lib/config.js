// Settings shared by the harness and the page objects.

/** Upper bound (ms) for every wait on a page or process; E2E_DELIVERY_TIMEOUT_MS overrides it. */
export const DEADLINE_MS = Number(process.env.E2E_DELIVERY_TIMEOUT_MS ?? 15000);
