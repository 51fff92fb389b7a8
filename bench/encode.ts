// Encode benchmark: each real fixture recording at guacenc's settings (1024×768, 25 fps) and
// at recgw's defaults (source size, 10 fps, 1000k), printing recording duration, wall time,
// real-time factor, CPU seconds (ours: every thread; ffmpeg: reaped children's from
// /proc/self/stat), peak RSS (ours: VmHWM; ffmpeg: VmHWM sampled until it exits) and clip size.
// Each run is a fresh child process so peak RSS is that run's alone.
//   npx tsx bench/encode.ts            all fixtures, both settings
//   npx tsx bench/encode.ts --big      also a ~150 MiB segment (vnc-desktop repeated, timestamps shifted)
//   npx tsx bench/encode.ts --preset veryfast   another x264 preset (default: recgw's, ultrafast+cabac)
import { fork } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { encodeRecording, type ClipSettings } from '../src/encoding/encode-segment.js';
import { locateFfmpeg } from '../src/encoding/ffmpeg-binary.js';
import { encodeInstruction, parseAll } from '../src/protocol/index.js';
import { PACKAGE_ROOT } from '../src/runtime-paths.js';

interface RunSpec {
  input: string;
  preset: ClipSettings['preset'];
  label: string;
  framerate: number;
  bitrate: number;
  width: number;
  height: number;
}

interface RunResult {
  label: string;
  settings: string;
  durationS: number;
  wallS: number;
  rtf: number;
  cpuOursS: number;
  cpuFfmpegS: number;
  rssOursMb: number;
  rssFfmpegMb: number;
  clipMb: number;
  frames: number;
  slots: number;
}

const CLK_TCK = 100;

function childrenCpuSeconds(): number {
  // Fields after the ")": state is field 3; cutime and cstime are fields 16 and 17.
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function vmHwmMb(pid: number | 'self'): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function runOne(spec: RunSpec): Promise<RunResult> {
  const out = mkdtempSync(join(tmpdir(), 'recgw-bench-'));
  const ffmpeg = await locateFfmpeg();
  let ffmpegPeak = 0;
  let sampler: NodeJS.Timeout | undefined;
  const cpu0 = process.cpuUsage();
  const children0 = childrenCpuSeconds();
  const t0 = performance.now();
  const r = await encodeRecording({
    input: spec.input,
    output: join(out, 'clip.mp4'),
    settings: { framerate: spec.framerate, bitrate: spec.bitrate, width: spec.width, height: spec.height, threads: 2, preset: spec.preset },
    ffmpeg,
    onFfmpegStart: (pid) => {
      sampler = setInterval(() => (ffmpegPeak = Math.max(ffmpegPeak, vmHwmMb(pid))), 20);
    },
  });
  const wallS = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const cpu = process.cpuUsage(cpu0);
  return {
    label: spec.label,
    settings: `${spec.width ? `${spec.width}x${spec.height}` : 'source'} ${spec.framerate}fps ${spec.bitrate / 1000}k ${spec.preset ?? 'default'}`,
    durationS: r.durationMs / 1000,
    wallS,
    rtf: r.durationMs / 1000 / wallS,
    cpuOursS: (cpu.user + cpu.system) / 1e6,
    cpuFfmpegS: childrenCpuSeconds() - children0,
    rssOursMb: vmHwmMb('self'),
    rssFfmpegMb: ffmpegPeak,
    clipMb: r.clipBytes / 1e6,
    frames: r.frames,
    slots: r.slots,
  };
}

/** Writes vnc-desktop `times` over, timestamps shifted so the clock runs on: a long segment. */
async function bigRecording(times: number): Promise<string> {
  const src = gunzipSync(readFileSync(join(PACKAGE_ROOT, 'fixtures', 'recordings', 'vnc-desktop.gz')));
  const all = parseAll(src);
  const first = all.find((i) => i.opcode === 'sync')!.intArg(0);
  const last = Math.max(...all.filter((i) => i.opcode === 'sync').map((i) => i.intArg(0)));
  const path = join(mkdtempSync(join(tmpdir(), 'recgw-big-')), 'big.guac');
  const out = createWriteStream(path);
  for (let k = 0; k < times; k++) {
    const shift = k * (last - first + 40);
    for (const i of all) {
      let bytes: Buffer | string = i.raw;
      if (k > 0 && i.opcode === 'sync') bytes = encodeInstruction('sync', i.intArg(0) + shift);
      else if (k > 0 && i.opcode === 'mouse' && i.argCount >= 4) bytes = encodeInstruction('mouse', i.arg(0), i.arg(1), i.arg(2), i.intArg(3) + shift);
      // guacd's closing disposes would blank the display between the copies.
      else if (i.opcode === 'dispose') continue;
      if (!out.write(bytes)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  }
  await new Promise<void>((r) => out.end(r));
  return path;
}

async function parent(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const specs: RunSpec[] = [];
  const presetArg = process.argv.indexOf('--preset');
  const preset = (presetArg >= 0 ? process.argv[presetArg + 1] : undefined) as RunSpec['preset'];
  for (const name of ['vnc-desktop', 'ssh-terminal', 'rdp-desktop']) {
    const input = join(PACKAGE_ROOT, 'fixtures', 'recordings', `${name}.gz`);
    // guacenc's anchor settings (1024×768, 25 fps, its default 2 Mbit/s), then recgw's defaults.
    specs.push({ input, label: name, preset, framerate: 25, bitrate: 2_000_000, width: 1024, height: 768 });
    specs.push({ input, label: name, preset, framerate: 10, bitrate: 1_000_000, width: 0, height: 0 });
  }
  if (process.argv.includes('--big')) {
    const big = await bigRecording(31);
    specs.push({ input: big, label: 'vnc×31 (150 MiB)', preset, framerate: 10, bitrate: 1_000_000, width: 0, height: 0 });
  }
  const ffmpeg = await locateFfmpeg();
  console.log(`ffmpeg ${ffmpeg.version} (${ffmpeg.source}); ${(await import('node:os')).availableParallelism()} cores`);
  const header = ['recording', 'settings', 'dur s', 'wall s', 'RTF', 'cpu ours', 'cpu ffmpeg', 'rss ours', 'rss ffmpeg', 'clip MB', 'frames', 'slots'];
  console.log(header.join('\t'));
  for (const spec of specs) {
    const result = await new Promise<RunResult>((resolve, reject) => {
      const child = fork(self, ['--one', JSON.stringify(spec)]);
      child.once('message', (m: unknown) => resolve(m as RunResult));
      child.once('exit', (code) => code !== 0 && reject(new Error(`bench child exited ${code}`)));
    });
    const r = result;
    console.log(
      [r.label, r.settings, r.durationS.toFixed(1), r.wallS.toFixed(2), r.rtf.toFixed(1), r.cpuOursS.toFixed(2), r.cpuFfmpegS.toFixed(2),
        r.rssOursMb.toFixed(0), r.rssFfmpegMb.toFixed(0), r.clipMb.toFixed(2), r.frames, r.slots].join('\t'),
    );
  }
}

const one = process.argv.indexOf('--one');
if (one >= 0) {
  const result = await runOne(JSON.parse(process.argv[one + 1]!) as RunSpec);
  process.send!(result, undefined, {}, () => process.exit(0));
} else {
  await parent();
}
