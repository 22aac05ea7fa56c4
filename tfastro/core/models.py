"""What the cases' models share: their own training in ``compile`` by default."""
import keras


class OwnCompile:
    """Mixin of a ``keras.Model`` whose ``compile`` puts the model's own optimizer, loss or
    metrics where an argument is "auto": a loaded model is compiled with what was saved
    (Keras does not call an overridden ``compile`` on its own when loading)."""

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)
