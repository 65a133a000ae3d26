// Progress of a streamed ZIP: bytes seen, entries written (from the local file headers), speed.
//
// The service writes STORED entries with their sizes in each local header (no data
// descriptors), so reading the 30-byte header, the name and the extra field is enough to know
// where the next entry starts; ZIP64 sizes come from the 0x0001 extra field.

const LOCAL_HEADER = 0x04034b50;
const HEADER_SIZE = 30;
const ZIP64_EXTRA = 0x0001;
const DATA_DESCRIPTOR_FLAG = 0x0008;

export const REPORT_NAME = "_download_report.txt";

export class ZipEntryCounter {
  constructor() {
    this.names = [];
    this.done = false; // past the last entry (central directory reached) or unreadable
    this._header = new Uint8Array(0);
    this._want = HEADER_SIZE;
    this._skip = 0;
  }

  /** Entries that are images (the report is not one). */
  get images() {
    return this.names.filter((name) => name !== REPORT_NAME).length;
  }

  get hasReport() {
    return this.names.includes(REPORT_NAME);
  }

  /** Feed the next chunk of the archive (a Uint8Array). */
  push(chunk) {
    let offset = 0;
    while (offset < chunk.length && !this.done) {
      if (this._skip > 0) {
        const step = Math.min(this._skip, chunk.length - offset);
        this._skip -= step;
        offset += step;
        continue;
      }
      const step = Math.min(this._want - this._header.length, chunk.length - offset);
      const joined = new Uint8Array(this._header.length + step);
      joined.set(this._header);
      joined.set(chunk.subarray(offset, offset + step), this._header.length);
      this._header = joined;
      offset += step;
      if (this._header.length === this._want) this._readHeader();
    }
  }

  _readHeader() {
    const view = new DataView(this._header.buffer);
    if (view.getUint32(0, true) !== LOCAL_HEADER) {
      this.done = true; // the central directory (or something this counter does not know)
      return;
    }
    const nameLength = view.getUint16(26, true);
    const extraLength = view.getUint16(28, true);
    const full = HEADER_SIZE + nameLength + extraLength;
    if (this._want < full) {
      this._want = full;
      return;
    }
    if (view.getUint16(6, true) & DATA_DESCRIPTOR_FLAG) {
      this.done = true; // sizes are not in the header: cannot follow this archive
      return;
    }
    const name = new TextDecoder().decode(this._header.subarray(HEADER_SIZE, HEADER_SIZE + nameLength));
    let size = view.getUint32(18, true);
    if (size === 0xffffffff) size = zip64Size(view, HEADER_SIZE + nameLength, extraLength);
    this.names.push(name);
    this._skip = size;
    this._header = new Uint8Array(0);
    this._want = HEADER_SIZE;
  }
}

function zip64Size(view, start, length) {
  let offset = start;
  while (offset + 4 <= start + length) {
    const id = view.getUint16(offset, true);
    const size = view.getUint16(offset + 2, true);
    if (id === ZIP64_EXTRA && size >= 16) {
      // Uncompressed size first, then the compressed size (equal for STORED entries).
      return Number(view.getBigUint64(offset + 4 + 8, true));
    }
    offset += 4 + size;
  }
  return 0;
}

/** Bytes per second over the last few seconds (steadier than since-the-start). */
export class RateMeter {
  constructor(windowSeconds = 4) {
    this.window = windowSeconds * 1000;
    this.samples = [];
  }

  add(totalBytes, now = performance.now()) {
    this.samples.push([now, totalBytes]);
    while (this.samples.length > 2 && now - this.samples[0][0] > this.window) this.samples.shift();
  }

  get bytesPerSecond() {
    if (this.samples.length < 2) return 0;
    const [t0, b0] = this.samples[0];
    const [t1, b1] = this.samples[this.samples.length - 1];
    return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
  }
}

/**
 * A pass-through TransformStream that counts bytes and ZIP entries and calls `onProgress`
 * ({bytes, images, hasReport, bytesPerSecond, lastName}) at most every `intervalMs`, and
 * once more at the end.
 */
export function progressStream(onProgress, { intervalMs = 200 } = {}) {
  const counter = new ZipEntryCounter();
  const meter = new RateMeter();
  let bytes = 0;
  let last = 0;
  const report = (force) => {
    const now = performance.now();
    meter.add(bytes, now);
    if (!force && now - last < intervalMs) return;
    last = now;
    onProgress({
      bytes,
      images: counter.images,
      hasReport: counter.hasReport,
      bytesPerSecond: meter.bytesPerSecond,
      lastName: counter.names[counter.names.length - 1] || "",
    });
  };
  return new TransformStream({
    transform(chunk, controller) {
      bytes += chunk.length;
      counter.push(chunk);
      controller.enqueue(chunk);
      report(false);
    },
    flush() {
      report(true);
    },
  });
}
