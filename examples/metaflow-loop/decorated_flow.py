"""The starting point: a flow that declares its packages with Metaflow's decorators.

    flowenv import decorated_flow.py          # writes flowenv.toml from the decorators

then delete the decorators (flow.py is the result) and run with flowenv.
"""

from metaflow import FlowSpec, pypi, pypi_base, step


@pypi_base(python="3.11", packages={"numpy": "1.26.4"})
class TrainFlow(FlowSpec):
    @step
    def start(self):
        import numpy as np  # pylint: disable=import-error

        self.data = np.arange(10)
        self.next(self.train)

    @pypi(packages={"scikit-learn": "1.5.2"})
    @step
    def train(self):
        from sklearn.linear_model import LinearRegression  # pylint: disable=import-error

        self.model = LinearRegression().fit(self.data.reshape(-1, 1), self.data * 2)
        self.next(self.end)

    @pypi(disabled=True)
    @step
    def end(self):
        print("done")


if __name__ == "__main__":
    TrainFlow()
