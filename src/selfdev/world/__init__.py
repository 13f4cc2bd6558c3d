"""The toy world: generated data (`toydata`), its word-level tokenizer (`wordtok`), building M0 and the
experts and the world report (`build`), and task vectors on disk (`taskvectors`). `chartok` is a
character-level tokenizer for tiny test models."""
