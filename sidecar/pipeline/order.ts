/**
 * The one ordered list of pipeline stages. Config may switch a stage off but
 * never move it (DESIGN §3).
 *
 * - metrics: times every query and counts what comes back (outermost, so it sees everything);
 * - autopath: answers a search walk the client starts (`N.S1`) by running the rest of the
 *   pipeline for each name of the walk (so policy, split, cache and forward apply per name);
 * - policy: allow / deny / log by the tenant's and the platform's rules;
 * - families: answers the address family the policy's `ipFamilies` leaves out (AAAA in an IPv4-only
 *   cluster) in the pod, in agreement with the other family's answer;
 * - split: answers split zones locally (CNAME to a PrivateLink host, or static addresses);
 * - cache: answers from the per-pod cache, stores what comes back, coalesces identical queries;
 * - forward: sends to the cluster group, a forward zone's group, or the default group.
 */
export const STAGE_ORDER = ['metrics', 'autopath', 'policy', 'families', 'split', 'cache', 'forward'] as const;

/** A stage name from {@link STAGE_ORDER}. */
export type StageName = (typeof STAGE_ORDER)[number];
