"""The models the kit knows: training and exporting the MNIST classifier (notebook 01) and
its ONNX variant (notebook 07).
"""
