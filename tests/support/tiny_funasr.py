"""Tiny, randomly initialised FunASR models in local directories, built in seconds.

They go through FunASR's real code paths (the registry builds them from config.yaml the
way AutoModel does, and AutoModel loads them from a directory like real weights), so a test
can prove the service drives FunASR's file pipeline (ASR + VAD + punctuation + speaker
embeddings, hotwords, sentence timestamps) and its chunked streaming (ParaformerStreaming with a
per-session cache) end to end with no network. Their text is noise.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import yaml

#: Width of every layer: small enough to build and run in a blink.
WIDTH = 16
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz")
ASR_TOKENS = ["<blank>", "<s>", "</s>", *CHARACTERS, "<unk>"]
PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]


def _write_cmvn(path: Path, dim: int) -> None:
    """Kaldi-nnet-text CMVN (`am.mvn`): zero shift, unit scale."""
    shift = " ".join(["0"] * dim)
    scale = " ".join(["1"] * dim)
    path.write_text(
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {scale} ]\n</Nnet>\n"
    )


def _sanm_decoder(**extra: Any) -> dict[str, Any]:
    return {"attention_heads": 2, "linear_units": WIDTH * 2, "num_blocks": 1, "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0, "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0,
            "att_layer_num": 1, "kernel_size": 3, "sanm_shfit": 0, **extra}


def seaco_paraformer_config() -> dict[str, Any]:
    return {
        "model": "SeacoParaformer",
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75, "inner_dim": WIDTH,
                       "bias_encoder_type": "lstm", "bias_encoder_bid": False, "seaco_lsm_weight": 0.1,
                       "seaco_length_normalized_loss": True, "NO_BIAS": len(ASR_TOKENS) - 1, "train_decoder": True,
                       "seaco_decoder": "ParaformerSANMDecoder",
                       "seaco_decoder_conf": _sanm_decoder(use_output_layer=False, wo_input_layer=True)},
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": WIDTH, "attention_heads": 2, "linear_units": WIDTH * 2, "num_blocks": 2,
                         "dropout_rate": 0.0, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0,
                         "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder",
                         "normalize_before": True, "kernel_size": 3, "sanm_shfit": 0,
                         "selfattention_layer_type": "sanm"},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": _sanm_decoder(),
        "predictor": "CifPredictorV3",
        "predictor_conf": {"idim": WIDTH, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45,
                           "smooth_factor": 1.0, "noise_threshold": 0, "smooth_factor2": 0.25,
                           "noise_threshold2": 0.01, "upsample_times": 3, "use_cif1_cnn": False,
                           "upsample_type": "cnn_blstm"},
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": 7, "lfr_n": 6},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    }


def paraformer_streaming_config() -> dict[str, Any]:
    """paraformer-zh-streaming's layout (chunked SANM encoder, online frontend), tiny."""
    return {
        "model": "ParaformerStreaming",
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
        "encoder": "SANMEncoderChunkOpt",
        "encoder_conf": {"output_size": WIDTH, "attention_heads": 2, "linear_units": WIDTH * 2, "num_blocks": 2,
                         "dropout_rate": 0.0, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0,
                         "input_layer": "pe_online", "pos_enc_class": "SinusoidalPositionEncoder",
                         "normalize_before": True, "kernel_size": 3, "sanm_shfit": 0,
                         "selfattention_layer_type": "sanm", "chunk_size": [12, 15], "stride": [8, 10],
                         "pad_left": [0, 0], "encoder_att_look_back_factor": [4, 4],
                         "decoder_att_look_back_factor": [1, 1]},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": _sanm_decoder(),
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": WIDTH, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        # No dither: a tiny random model turns its noise into other tokens, and the tests compare
        # sessions' streaming texts exactly (the real model's default is 1.0, harmless there).
        "frontend": "WavFrontendOnline",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": 7, "lfr_n": 6, "dither": 0.0},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    }


def ct_punc_config() -> dict[str, Any]:
    return {
        "model": "CTTransformer",
        "model_conf": {"ignore_id": 0, "embed_unit": WIDTH, "att_unit": WIDTH, "dropout_rate": 0.0,
                       "punc_list": PUNC_LIST, "punc_weight": [1.0] * len(PUNC_LIST), "sentence_end_id": 3},
        "encoder": "SANMEncoder",
        "encoder_conf": {"input_size": WIDTH, "output_size": WIDTH, "attention_heads": 2, "linear_units": WIDTH * 2,
                         "num_blocks": 1, "dropout_rate": 0.0, "positional_dropout_rate": 0.0,
                         "attention_dropout_rate": 0.0, "input_layer": "pe",
                         "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True, "kernel_size": 3,
                         "sanm_shfit": 0, "selfattention_layer_type": "sanm", "padding_idx": 0},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
    }


def campplus_config() -> dict[str, Any]:
    return {
        "model": "CAMPPlus",
        "model_conf": {"feat_dim": 80, "embedding_size": WIDTH * 4, "growth_rate": 8, "bn_size": 2,
                       "init_channels": WIDTH * 2, "config_str": "batchnorm-relu", "memory_efficient": True,
                       "output_level": "segment"},
    }


def _build(directory: Path, config: dict[str, Any], tokens: list[str] | None, cmvn_dim: int | None) -> Path:
    import torch
    from funasr.auto.auto_model import AutoModel

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    kwargs: dict[str, Any] = {"model": str(directory), "device": "cpu", "disable_update": True}
    if tokens is not None:
        (directory / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False))
    if cmvn_dim is not None:
        _write_cmvn(directory / "am.mvn", cmvn_dim)
    # An empty checkpoint first, so AutoModel's own loader accepts the directory; then the
    # randomly initialised weights it built replace it.
    torch.save({}, directory / "model.pt")
    with contextlib.redirect_stdout(io.StringIO()):  # FunASR prints every key the empty file lacks
        model, _ = AutoModel.build_model(**kwargs)
    torch.manual_seed(0)
    torch.save(model.state_dict(), directory / "model.pt")
    return directory


def build_tiny_models(root: Path) -> dict[str, Path]:
    """asr, punc, spk and stream (ParaformerStreaming) model directories under `root`
    (rebuilt only when missing). Parallel test processes share `root`: a file lock makes the
    first build them while the others wait, so none loads a half-written checkpoint."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".build.lock"):
        return _build_missing(root)


def _build_missing(root: Path) -> dict[str, Path]:
    built = {}
    for name, config, tokens, cmvn_dim in (
        ("asr", seaco_paraformer_config(), ASR_TOKENS, 560),
        ("punc", ct_punc_config(), ["<blank>", "<s>", "</s>", *CHARACTERS, "<unk>"], None),
        ("spk", campplus_config(), None, None),
        ("stream", paraformer_streaming_config(), ASR_TOKENS, 560),
    ):
        directory = root / f"tiny-{name}"
        if not (directory / "model.pt").exists() or (directory / "model.pt").stat().st_size < 1000:
            _build(directory, config, tokens, cmvn_dim)
        built[name] = directory
    return built
