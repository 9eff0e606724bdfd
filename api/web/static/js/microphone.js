// The microphone as a stream of mono Float32 chunks at the audio context's rate: an
// AudioWorklet where there is one, else the older ScriptProcessor (deprecated, but the only
// way on browsers or pages without worklets).

export class MicrophoneError extends Error {}

// What a person can do about each way getUserMedia fails.
function explain(error) {
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return "Microphone access was denied. Allow the microphone for this page in the browser's site settings, "
      + "then try again.";
  }
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
    return "No microphone was found. Connect one and try again.";
  }
  if (error.name === "NotReadableError") {
    return "The microphone is in use by another program or could not be opened.";
  }
  return `The microphone could not be opened: ${error.message || error.name}`;
}

export async function openMicrophone(onChunk) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MicrophoneError("Browsers allow the microphone only on secure pages: open this page over https, "
      + "or on localhost.");
  }
  let stream;
  try {
    // No noise suppression: speech models cope with noise better than with its artifacts.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
    });
  } catch (error) {
    throw new MicrophoneError(explain(error));
  }
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(stream);
  // The capture node must reach the destination to be pulled; silenced, so nothing echoes.
  const mute = context.createGain();
  mute.gain.value = 0;
  mute.connect(context.destination);
  let node;
  if (context.audioWorklet) {
    await context.audioWorklet.addModule(new URL("./pcm-worklet.js", import.meta.url));
    node = new AudioWorkletNode(context, "pcm-capture");
    node.port.onmessage = (event) => onChunk(event.data);
  } else {
    node = context.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (event) => onChunk(new Float32Array(event.inputBuffer.getChannelData(0)));
  }
  source.connect(node);
  node.connect(mute);
  return {
    sampleRate: context.sampleRate,
    stop() {
      stream.getTracks().forEach((track) => track.stop());
      source.disconnect();
      node.disconnect();
      context.close();
    },
  };
}
