"""The toy world: generated data (`toydata`), its character tokenizer (`chartok`), building M0 and the
experts and the world report (`build`), and task vectors on disk (`taskvectors`)."""
