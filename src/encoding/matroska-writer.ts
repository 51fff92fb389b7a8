// The smallest Matroska stream ffmpeg's demuxer accepts for timestamped raw RGBA frames over a
// pipe: EBML header, a Segment of unknown size (we never seek back), Info, one video track
// (V_UNCOMPRESSED, ColourSpace "RGBA"), then one Cluster per frame holding one SimpleBlock.
// Raw frames on a pipe carry no timestamps; this lets us send only frames that changed and let
// ffmpeg make a constant-frame-rate clip from them. Layout checked against a file written by
// `ffmpeg -f lavfi -i testsrc -c:v rawvideo -pix_fmt rgba -f matroska`, by ffmpeg 4.1 and 5.1.

const ID = {
  EBML: 0x1a45dfa3,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackUID: 0x73c5,
  TrackType: 0x83,
  FlagLacing: 0x9c,
  DefaultDuration: 0x23e383,
  CodecID: 0x86,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  ColourSpace: 0x2eb524,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
} as const;

/** Element size meaning "unknown": the Segment runs to the end of the stream. */
const UNKNOWN_SIZE = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

function idBytes(id: number): Buffer {
  const len = id > 0xffffff ? 4 : id > 0xffff ? 3 : id > 0xff ? 2 : 1;
  const b = Buffer.alloc(len);
  b.writeUIntBE(id, 0, len);
  return b;
}

/** EBML variable-length size: 8 bytes always, simple and valid for any size we write. */
function sizeBytes(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(0x01, 0);
  b.writeUIntBE(size, 2, 6);
  return b;
}

function uintBytes(v: number): Buffer {
  let len = 1;
  while (len < 6 && v >= 2 ** (8 * len)) len++;
  const b = Buffer.alloc(len);
  b.writeUIntBE(v, 0, len);
  return b;
}

function element(id: number, payload: Buffer | Buffer[]): Buffer {
  const body = Array.isArray(payload) ? Buffer.concat(payload) : payload;
  return Buffer.concat([idBytes(id), sizeBytes(body.length), body]);
}

const uint = (id: number, v: number): Buffer => element(id, uintBytes(v));
const str = (id: number, v: string): Buffer => element(id, Buffer.from(v, 'latin1'));

/**
 * Stream header for one raw video track of the given size, RGBA or I420 (yuv420p) pixels;
 * timestamps are in milliseconds.
 * `frameDurationNs` becomes the track's DefaultDuration, so the last frame lasts exactly one
 * frame: without it ffmpeg guesses from the last gaps (measured: up to 7 extra frames at
 * 25 fps) and the clip would run past the recording's last sync.
 */
export function matroskaHeader(width: number, height: number, frameDurationNs: number, colourSpace: 'RGBA' | 'I420' = 'RGBA'): Buffer {
  const ebml = element(ID.EBML, [
    uint(ID.EBMLVersion, 1),
    uint(ID.EBMLReadVersion, 1),
    uint(ID.EBMLMaxIDLength, 4),
    uint(ID.EBMLMaxSizeLength, 8),
    str(ID.DocType, 'matroska'),
    uint(ID.DocTypeVersion, 4),
    uint(ID.DocTypeReadVersion, 2),
  ]);
  const info = element(ID.Info, [uint(ID.TimecodeScale, 1_000_000), str(ID.MuxingApp, 'recgw'), str(ID.WritingApp, 'recgw')]);
  const tracks = element(ID.Tracks, [
    element(ID.TrackEntry, [
      uint(ID.TrackNumber, 1),
      uint(ID.TrackUID, 1),
      uint(ID.TrackType, 1),
      uint(ID.FlagLacing, 0),
      uint(ID.DefaultDuration, Math.round(frameDurationNs)),
      str(ID.CodecID, 'V_UNCOMPRESSED'),
      element(ID.Video, [uint(ID.PixelWidth, width), uint(ID.PixelHeight, height), str(ID.ColourSpace, colourSpace)]),
    ]),
  ]);
  return Buffer.concat([ebml, idBytes(ID.Segment), UNKNOWN_SIZE, info, tracks]);
}

/**
 * The bytes that precede one frame's pixels: a Cluster at `timestampMs` holding one keyframe
 * SimpleBlock of `frameBytes` bytes. Written separately so the (large) frame is never copied.
 */
export function matroskaFramePrefix(timestampMs: number, frameBytes: number): Buffer {
  const timecode = uint(ID.Timecode, Math.round(timestampMs));
  // SimpleBlock header: track number 1 as a 1-byte vint, 16-bit relative timecode 0, flags keyframe.
  const blockHead = Buffer.from([0x81, 0x00, 0x00, 0x80]);
  const blockSize = blockHead.length + frameBytes;
  const block = Buffer.concat([idBytes(ID.SimpleBlock), sizeBytes(blockSize), blockHead]);
  const clusterSize = timecode.length + block.length + frameBytes;
  return Buffer.concat([idBytes(ID.Cluster), sizeBytes(clusterSize), timecode, block]);
}
