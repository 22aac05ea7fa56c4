"""Adam of the 3D-MIM stack, with an exponential moving average of the weights."""
import contextlib

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfastro")
class MIMAdam(keras.optimizers.Optimizer):
    """Adam with epsilon inside the square root, and a weight EMA used for forecasting.

    Update at step t (1-based), with bias-corrected moments::

        m_hat = m_t / (1 - beta_1^t)   v_hat = v_t / (1 - beta_2^t)
        w <- w - lr * m_hat / sqrt(v_hat + epsilon)

    After each update the shadow ``ema`` of every variable moves as
    ``ema <- d ema + (1 - d) w`` with ``d = min(ema_decay, (1 + t) / (10 + t))`` (the warm-up
    of TensorFlow's ExponentialMovingAverage with num_updates, so early forecasts are not
    dominated by the initial weights). The shadows are optimizer variables: they are saved
    and restored with its state. ``ema_weights(var_list)`` swaps them in temporarily.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.95, beta_2=0.9995, epsilon=1e-8,
                 ema_decay=0.9995, name="mim_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.ema_decay = float(ema_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = [self.add_variable_from_reference(v, "momentum") for v in var_list]
        self._velocities = [self.add_variable_from_reference(v, "velocity") for v in var_list]
        # The averages start as copies of the weights, made by their initialisers: assigned
        # after creation, inside a traced TensorFlow step (fit builds the optimizer there),
        # they stayed zero; and on JAX an assigned array is shared, so a compiled step
        # donating the state would donate one buffer twice.
        self._averages = [self.add_variable_from_reference(
            v, "ema", initializer=lambda shape, dtype, v=v: ops.copy(v.value)) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v, average = self._momentums[index], self._velocities[index], self._averages[index]
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        grad = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        self.assign_add(m, ops.multiply(ops.subtract(grad, m), 1.0 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(grad), v), 1.0 - self.beta_2))
        m_hat = ops.divide(m, 1.0 - ops.power(ops.cast(self.beta_1, dtype), step))
        v_hat = ops.divide(v, 1.0 - ops.power(ops.cast(self.beta_2, dtype), step))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, m_hat), ops.sqrt(v_hat + self.epsilon)))
        decay = ops.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        self.assign(average, decay * average + (1.0 - decay) * variable)

    def ema_of(self, variable):
        """The shadow (moving average) of ``variable``."""
        return self._averages[self._get_variable_index(variable)]

    @contextlib.contextmanager
    def ema_weights(self, var_list):
        """Within the block, ``var_list`` hold their moving averages (restored on exit)."""
        saved = [ops.copy(v.value) for v in var_list]
        for var in var_list:
            var.assign(self.ema_of(var))
        try:
            yield
        finally:
            for var, value in zip(var_list, saved):
                var.assign(value)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "ema_decay": self.ema_decay}
