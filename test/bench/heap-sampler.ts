/**
 * Preloaded by `profile.ts --heap` into the profiled sidecar (`node --import`):
 * samples every allocation (one per 8 KiB allocated on average), including the
 * objects that die young, which `node --heap-prof` leaves out: on the hot path
 * nearly everything dies young, and that is what keeps the GC busy. At exit it
 * writes the sampling profile to $TENANT_DNS_HEAP_PROFILE. With
 * $TENANT_DNS_HEAP_SURVIVORS=1 it leaves out what young collections freed: what
 * is left is what outlived one, the objects V8 copies and promotes, and which
 * old-generation collections then have to mark and sweep.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.TENANT_DNS_HEAP_PROFILE;
if (out) {
  const session = new Session();
  session.connect();
  const survivors = process.env.TENANT_DNS_HEAP_SURVIVORS === '1';
  session.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !survivors });
  // On the main thread the session answers synchronously, so this works in an exit handler.
  process.on('exit', () => {
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (!err) writeFileSync(out, JSON.stringify(result.profile));
    });
  });
}
