"""The runner backends behind ``seg_core.runners``: ``base`` (the ``Runner`` protocol, ``RunnerError``,
shared torch helpers), ``torch_runner``, ``onnx_runner``, ``openvino_runner``. Import from
``seg_core.runners``."""
