import { Image } from '@napi-rs/canvas';

/** Largest image stream accepted, decoded bytes: far above any guacd update, bounds memory. */
export const MAX_IMAGE_STREAM_BYTES = 64 * 1024 * 1024;

/**
 * The blobs of one `img` stream, base64-decoded as they arrive so only binary is held.
 *
 * guacd pads every blob on its own, but other writers may split one base64 text anywhere, so a
 * blob's trailing partial quantum (length not a multiple of 4, no padding) is carried over to the
 * next blob instead of being decoded alone.
 */
export class ImageStream {
  readonly mimetype: string;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #carry = '';
  #overflow = false;

  constructor(mimetype: string) {
    this.mimetype = mimetype;
  }

  /** Adds one blob's base64 text (as raw bytes from the instruction). */
  push(base64: Buffer): void {
    if (this.#overflow) return;
    let text = base64.toString('latin1');
    if (this.#carry !== '') {
      text = this.#carry + text;
      this.#carry = '';
    }
    if (text.indexOf('=') < 0) {
      const whole = text.length & ~3;
      if (whole < text.length) {
        this.#carry = text.slice(whole);
        text = text.slice(0, whole);
      }
    }
    const chunk = Buffer.from(text, 'base64');
    this.#bytes += chunk.length;
    if (this.#bytes > MAX_IMAGE_STREAM_BYTES) {
      this.#overflow = true;
      this.#chunks = [];
      return;
    }
    this.#chunks.push(chunk);
  }

  /** What has arrived so far, to carry an unfinished stream into a saved state: the decoded bytes
   *  and any trailing base64 characters not yet decodable. Null after an overflow. */
  pending(): { bytes: Buffer; carry: string } | null {
    if (this.#overflow) return null;
    return { bytes: Buffer.concat(this.#chunks), carry: this.#carry };
  }

  /**
   * Decodes the image. @napi-rs/canvas decodes synchronously when `src` is set from a Buffer
   * (measured: `complete` is true and the size known right after), so the common path returns an
   * Image; a Promise only if a future version defers decoding. Returns null when the data is not
   * a decodable image (or the stream overflowed).
   */
  decode(): Image | null | Promise<Image | null> {
    if (this.#overflow) return null;
    if (this.#carry !== '') this.#chunks.push(Buffer.from(this.#carry, 'base64'));
    const data = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = [];
    if (data.length === 0) return null;
    const image = new Image();
    // The error event fires later, asynchronously; a decode failure is seen from the size below.
    image.onerror = () => {};
    image.src = data;
    if (image.complete) return image.width > 0 && image.height > 0 ? image : null;
    return image.decode().then(
      () => (image.width > 0 && image.height > 0 ? image : null),
      () => null,
    );
  }
}

/**
 * Frees a drawn image's pixels now. An Image keeps its decoded bitmap until V8 collects it, and
 * V8 does not see that native memory, so with a small JS heap it rarely collects: on
 * vnc-desktop (1763 images) the render worker grew to ~340 MB RSS; releasing each image once
 * drawn keeps it at ~155 MB (measured with @napi-rs/canvas 1.1.1). An empty `src` drops the
 * bitmap; the image must not be drawn again after this.
 */
export function releaseImage(image: Image): void {
  image.onerror = () => {};
  image.src = EMPTY;
}

const EMPTY = Buffer.alloc(0);
