import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import type { S3StoreOptions } from '../../src/storage/s3-store.js';

/** s3rver accepts only this key pair. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/**
 * A real S3 protocol server (s3rver) on 127.0.0.1 with a temporary folder and one bucket.
 * stop() drops every connection at once (like a server going away); start() again listens on
 * the same port with the same data, so the same endpoint URL works again.
 */
export class TestS3Server {
  readonly bucket: string;
  readonly directory: string;
  #port = 0;
  #server: S3rver | undefined;

  private constructor(directory: string, bucket: string) {
    this.directory = directory;
    this.bucket = bucket;
  }

  static async start(bucket = 'recordings'): Promise<TestS3Server> {
    const dir = await mkdtemp(join(tmpdir(), 'recgw-s3rver-'));
    const s = new TestS3Server(dir, bucket);
    await s.start();
    return s;
  }

  get port(): number {
    return this.#port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** What an S3Store needs to talk to this server (its other options stay at their defaults). */
  storeOptions(): S3StoreOptions {
    return { bucket: this.bucket, endpoint: this.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3RVER_CREDENTIALS };
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = new S3rver({
      address: '127.0.0.1',
      port: this.#port,
      silent: true,
      directory: this.directory,
      configureBuckets: [{ name: this.bucket }],
    });
    const addr = await server.run();
    this.#port = addr.port;
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.httpServer.closeAllConnections();
    await server.close();
  }

  /** Stops the server and deletes its data. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.directory, { recursive: true, force: true });
  }
}
