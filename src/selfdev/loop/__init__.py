"""The Self-Developing loop: the factory and its sampling (`factory`), its warm-up and DPO (`finetune`),
the example library (`library`), the pure table steps (`tables`) and the workflow steps (`steps`)."""
