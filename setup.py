"""Build step that pyproject.toml cannot declare: ship shaders/*.wgsl inside the package.

The repository keeps the kernels in the top-level shaders/ folder (the site and the docs show them
from there). A built wheel carries a copy as pyscript_app/shaders/, which `registry.shader_dir` finds
with importlib.resources; an editable install reads the repository's folder instead.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHADERS = Path(__file__).resolve().parent / "shaders"


class BuildPyWithShaders(build_py):
    """build_py, then copy shaders/*.wgsl to <build_lib>/pyscript_app/shaders/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # the editable package reads the repository's shaders/ directly
        target = Path(self.build_lib) / "pyscript_app" / "shaders"
        self.mkpath(str(target))
        for source in sorted(SHADERS.glob("*.wgsl")):
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithShaders})
