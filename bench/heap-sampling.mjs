// Preloaded (node --import) into a process the allocation benchmark measures: the first SIGUSR2
// starts V8's sampling heap profiler (every allocation counted, garbage included), the second stops
// it and writes the profile to $HEAP_SAMPLING_OUT.
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';

const session = new inspector.Session();
session.connect();
let sampling = false;
process.on('SIGUSR2', () => {
  if (!sampling) {
    sampling = true;
    session.post('HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return;
  }
  sampling = false;
  session.post('HeapProfiler.stopSampling', (err, r) => {
    if (!err) writeFileSync(process.env.HEAP_SAMPLING_OUT, JSON.stringify(r.profile));
  });
});
