"""What ``export_onnx`` writes: the two graph files and their input/output names with axes.

Kept apart from the exporter so optimum's registration (``optimum.py``) can describe the graphs
without importing the exporter, which imports the modular model code.
"""

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
# Input and output names with their axes; strings are dynamic axes, shared names are equal sizes.
ENCODER_INPUTS = {"input_ids": ("batch", "encoder_sequence"), "attention_mask": ("batch", "encoder_sequence")}
ENCODER_OUTPUTS = {"last_hidden_state": ("batch", "encoder_sequence", "d_model")}
DECODER_INPUTS = {
    "decoder_input_ids": ("batch", "decoder_sequence"),
    "encoder_hidden_states": ("batch", "encoder_sequence", "d_model"),
    "encoder_attention_mask": ("batch", "encoder_sequence"),
}
DECODER_OUTPUTS = {"logits": ("batch", "decoder_sequence", "vocab_size")}
DYNAMIC_AXES = ("batch", "encoder_sequence", "decoder_sequence")
