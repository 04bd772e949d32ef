/**
 * Regression (issue 6; found when the config-faults burst test failed in
 * CI, twice in about fifteen runs, with no log line after "sidecar
 * serving"): the sidecar installed its signal handlers only after
 * startSidecar returned, and "sidecar serving" is logged before it
 * returns. A SIGHUP sent as soon as that line appeared (a config reloader
 * that waits for it does exactly this) met no handler and killed the
 * process. Sent the moment the line arrives, it killed 19 starts of 20.
 * Now the handlers are installed before start-up, and a SIGHUP during
 * start-up reloads the policy once the sidecar serves.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnCli, waitFor } from '../helpers/sidecar.ts';

const POLICY = join(import.meta.dirname, '..', '..', 'examples', 'frontend-deny-com.yaml');

test('sidecar: a SIGHUP the moment "sidecar serving" is logged reloads the policy, it does not kill the process', async (t) => {
  for (let run = 0; run < 5; run++) {
    const p = spawnCli(['sidecar', '--listen', '127.0.0.1:0', '--upstream', 'udp://127.0.0.1:9', '--policy', POLICY]);
    t.after(() => p.kill());
    let signalled = false;
    p.child.stderr!.on('data', () => {
      if (!signalled && p.stderr().includes('"msg":"sidecar serving"')) {
        signalled = true;
        p.child.kill('SIGHUP');
      }
    });
    let exit: number | undefined;
    void p.exited.then((c) => (exit = c));
    await waitFor(`run ${run}: the reload the SIGHUP asked for`, () => {
      assert.equal(exit, undefined, `run ${run}: the sidecar exited (${exit}, signal ${p.child.signalCode}) after the SIGHUP: ${p.stderr()}`);
      return p.stderr().includes('"msg":"policy reloaded"');
    }, 10_000, () => p.stderr());
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0, `run ${run}: a clean drain after SIGTERM: ${p.stderr()}`);
  }
});
