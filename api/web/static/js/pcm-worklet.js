// Runs on the audio thread: mixes the microphone to mono and hands the main thread batches
// of ~40 ms (a message per 128-sample render quantum would be ~375 messages a second).

const BATCH_SAMPLES = 2048;

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.batch = new Float32Array(BATCH_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const length = channels[0].length;
      for (let i = 0; i < length; i += 1) {
        let sum = 0;
        for (const channel of channels) sum += channel[i];
        this.batch[this.filled] = sum / channels.length;
        this.filled += 1;
        if (this.filled === BATCH_SAMPLES) {
          this.port.postMessage(this.batch);
          this.batch = new Float32Array(BATCH_SAMPLES);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
