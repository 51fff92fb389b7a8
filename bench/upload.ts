// Upload throughput on loopback: 200 MB of clips to s3rver with one PutObject per clip versus
// our S3Store (default: one streamed PutObject up to 64 MiB, multipart above; also forced
// multipart), and through the file:// store versus `cp`.
// Run: npx tsx bench/upload.ts [total MB, default 200] [clip MB, default 20] [rounds, default 3]
// (e.g. `npx tsx bench/upload.ts 200 100` for clips big enough to go multipart by default)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { LocalStore } from '../src/storage/local-store.js';
import { S3Store } from '../src/storage/s3-store.js';
import { TestS3Server } from '../test/support/s3-server.js';

const totalMb = Number(process.argv[2] ?? 200);
const clipMb = Number(process.argv[3] ?? 20);
const rounds = Number(process.argv[4] ?? 3);
const count = Math.max(1, Math.round(totalMb / clipMb));
const MB = 1024 * 1024;
/** The Uploader's default number of segments stored at once (src/pipeline/upload-queue.ts). */
const UPLOAD_CONCURRENCY = 2;

async function timed(label: string, bytes: number, fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const rate = bytes / MB / s;
  process.stdout.write(`${label.padEnd(52)} ${s.toFixed(2).padStart(7)} s  ${rate.toFixed(1).padStart(7)} MB/s\n`);
  return rate;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'recgw-bench-upload-'));
  const server = await TestS3Server.start('bench');
  try {
    const srcDir = join(work, 'clips');
    await mkdir(srcDir);
    const files: string[] = [];
    for (let i = 0; i < count; i++) {
      const p = join(srcDir, `${String(i + 1).padStart(6, '0')}.mp4`);
      await writeFile(p, randomBytes(clipMb * MB));
      files.push(p);
    }
    const bytes = count * clipMb * MB;
    process.stdout.write(`${count} clips × ${clipMb} MiB = ${(bytes / MB).toFixed(0)} MiB, s3rver ${server.endpoint}, node ${process.version}\n\n`);

    const store = new S3Store(server.storeOptions());

    // Warm-up: the clips in the page cache and both upload paths exercised once, so the order of
    // the measurements below does not favour the later ones.
    execFileSync('sh', ['-c', `cat "${srcDir}"/* > /dev/null`]);
    await store.client.send(
      new PutObjectCommand({ Bucket: server.bucket, Key: 'warm/a', Body: createReadStream(files[0]!), ContentLength: (await stat(files[0]!)).size }),
    );
    await store.put('warm/b', { path: files[0]! }, { contentType: 'video/mp4' });

    const forced = new S3Store({ ...server.storeOptions(), multipartThreshold: 0 });
    const local = new LocalStore(join(work, 'store'));
    const name = (f: string) => f.slice(f.lastIndexOf('/') + 1);

    // Every case runs once per round, rounds interleaved, so machine load falls on all alike;
    // medians are compared.
    const cases: Array<{ label: string; run: (round: number) => Promise<void> }> = [
      {
        label: 'S3: one PutObject per clip',
        run: async (r) => {
          for (const f of files) {
            const size = (await stat(f)).size;
            await store.client.send(
              new PutObjectCommand({ Bucket: server.bucket, Key: `single${r}/${name(f)}`, Body: createReadStream(f), ContentLength: size, ContentType: 'video/mp4' }),
            );
          }
        },
      },
      {
        label: 'S3: S3Store.put, one at a time',
        run: async (r) => {
          for (const f of files) await store.put(`ours${r}/${name(f)}`, { path: f }, { contentType: 'video/mp4' });
        },
      },
      {
        // The Uploader stores up to UPLOAD_CONCURRENCY segments at once (its default): the rate
        // the gateway reaches when clips wait in the spool.
        label: `S3: Uploader's way (${UPLOAD_CONCURRENCY} clips at a time)`,
        run: async (r) => {
          let next = 0;
          const lane = async () => {
            while (next < files.length) {
              const f = files[next++]!;
              await store.put(`par${r}/${name(f)}`, { path: f }, { contentType: 'video/mp4' });
            }
          };
          await Promise.all(Array.from({ length: UPLOAD_CONCURRENCY }, lane));
        },
      },
      {
        label: 'S3: forced multipart 8 MiB × 4',
        run: async (r) => {
          for (const f of files) await forced.put(`multi${r}/${name(f)}`, { path: f }, { contentType: 'video/mp4' });
        },
      },
      {
        label: 'file: cp',
        run: async (r) => {
          const d = join(work, `cp${r}`);
          await mkdir(d);
          execFileSync('cp', [...files, d]);
        },
      },
      {
        label: 'file: cp + sync of the copies (durable)',
        run: async (r) => {
          const d = join(work, `cps${r}`);
          await mkdir(d);
          execFileSync('cp', [...files, d]);
          // coreutils sync with file operands fsyncs just those files
          execFileSync('sync', files.map((f) => join(d, name(f))));
        },
      },
      {
        label: 'file: LocalStore.put (tmp+fsync+rename)',
        run: async (r) => {
          for (const f of files) await local.put(`r${r}/alice/${name(f)}`, { path: f }, { contentType: 'video/mp4' });
        },
      },
    ];
    const rates = cases.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      for (const [i, c] of cases.entries()) rates[i]!.push(await timed(`round ${r + 1} ${c.label}`, bytes, () => c.run(r)));
    }
    store.close();
    forced.close();
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const m = rates.map(median);
    process.stdout.write(`\nmedians of ${rounds} rounds:\n`);
    for (const [i, c] of cases.entries()) process.stdout.write(`  ${c.label.padEnd(44)} ${m[i]!.toFixed(1).padStart(7)} MB/s\n`);
    const [single, ours, parallel, multi, cp, cpSync, fileStore] = m as [number, number, number, number, number, number, number];
    process.stdout.write(`\nuploader's way / single PutObject:       ${(parallel / single).toFixed(2)}  (target ≥ 1)\n`);
    process.stdout.write(`S3Store.put one at a time / single:      ${(ours / single).toFixed(2)}  (the same PUT plus a verifying HEAD)\n`);
    process.stdout.write(`forced multipart / single PutObject:     ${(multi / single).toFixed(2)}  (s3rver re-assembles parts on disk)\n`);
    process.stdout.write(`file store / cp:                         ${(fileStore / cp).toFixed(2)}  (target ≥ 0.8)\n`);
    process.stdout.write(`file store / cp + sync:                  ${(fileStore / cpSync).toFixed(2)}\n`);
  } finally {
    await server.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
