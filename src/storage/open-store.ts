import type { Config } from '../config/config.js';
import { LocalStore } from './local-store.js';
import type { ObjectStore } from './object-store.js';
import { S3Store, type S3StoreOptions } from './s3-store.js';
import type { UploadLocation } from './upload-location.js';

/** The store a parsed RECORDING_UPLOAD_LOCATION names, with the S3 settings from the config. */
export function openObjectStore(
  location: UploadLocation,
  config: Pick<Config, 's3'> & { recording: Pick<Config['recording'], 'objectStorageKey' | 'objectStorageSecret'> },
  tuning: Pick<S3StoreOptions, 'partSize' | 'queueSize' | 'maxAttempts'> = {},
): ObjectStore {
  const t = location.target;
  if (t.kind === 'file') return new LocalStore(t.root);
  const { objectStorageKey: key, objectStorageSecret: secret } = config.recording;
  return new S3Store({
    bucket: t.bucket,
    endpoint: t.endpoint,
    region: config.s3.region,
    forcePathStyle: config.s3.forcePathStyle,
    credentials: key && secret ? { accessKeyId: key, secretAccessKey: secret } : undefined,
    ...tuning,
  });
}
