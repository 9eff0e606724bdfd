// Microphone samples to what `/v1/stream` takes: 16 kHz mono 16-bit PCM in ~100 ms frames,
// done here in plain JS because browsers capture at their own rate (44.1 or 48 kHz) and
// only Chromium would resample for us (an AudioContext at 16 kHz fails in Firefox).

export const TARGET_RATE = 16000;
export const FRAME_SAMPLES = TARGET_RATE / 10;  // 100 ms

// Averages the input over each output sample's span: a box filter, enough against aliasing
// for speech, and it keeps its place across chunks so frame edges leave no clicks.
export class Downsampler {
  constructor(inputRate, outputRate = TARGET_RATE) {
    this.ratio = inputRate / outputRate;
    this.pending = new Float32Array(0);
    this.position = 0;
  }

  push(chunk) {
    const input = new Float32Array(this.pending.length + chunk.length);
    input.set(this.pending);
    input.set(chunk, this.pending.length);
    const out = new Int16Array(Math.max(0, Math.floor((input.length - this.position) / this.ratio)));
    let count = 0;
    while (count < out.length && this.position + this.ratio <= input.length) {
      const start = Math.floor(this.position);
      const end = Math.max(start + 1, Math.floor(this.position + this.ratio));
      let sum = 0;
      for (let i = start; i < end; i += 1) sum += input[i];
      const sample = Math.max(-1, Math.min(1, sum / (end - start)));
      out[count] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
      count += 1;
      this.position += this.ratio;
    }
    const consumed = Math.floor(this.position);
    this.pending = input.slice(consumed);
    this.position -= consumed;
    return out.subarray(0, count);
  }
}

// Cuts a run of samples into fixed frames; `flush` gives the short rest at the end.
export class Framer {
  constructor(frameSamples = FRAME_SAMPLES) {
    this.frameSamples = frameSamples;
    this.buffer = new Int16Array(0);
  }

  push(samples) {
    const joined = new Int16Array(this.buffer.length + samples.length);
    joined.set(this.buffer);
    joined.set(samples, this.buffer.length);
    const frames = [];
    let offset = 0;
    for (; offset + this.frameSamples <= joined.length; offset += this.frameSamples) {
      frames.push(joined.slice(offset, offset + this.frameSamples));
    }
    this.buffer = joined.slice(offset);
    return frames;
  }

  flush() {
    const rest = this.buffer;
    this.buffer = new Int16Array(0);
    return rest.length ? [rest] : [];
  }
}

// The frames sent, as a WAV file the page's player can play back after the session.
export function wavBlob(frames, rate = TARGET_RATE) {
  const samples = frames.reduce((total, frame) => total + frame.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => [...value].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  header.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVEfmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true);  // PCM
  header.setUint16(22, 1, true);  // mono
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, samples * 2, true);
  return new Blob([header, ...frames], { type: "audio/wav" });
}
