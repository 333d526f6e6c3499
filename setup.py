from setuptools import find_packages, setup

setup(
    name='mutual_mm',
    version='0.1.0',
    description='MutualNet (width x resolution adaptive networks) for MMDetection and MMAction2',
    packages=find_packages(include=['mutual_mm', 'mutual_mm.*']),
    python_requires='>=3.9',
    # The core (slim layers, the hook, the classifier family, BN calibration, the table,
    # export) needs mmengine and mmcv's Python parts: mmcv (with or without its compiled
    # operators) or mmcv-lite, which both install the module `mmcv`, so neither is
    # required here: pick one with an extra. Detection and video need the full stack.
    install_requires=['mmengine==0.10.7'],
    # mmdeploy: install it with `pip install --no-deps mmdeploy==1.3.1` first (it pins
    # protobuf<=3.20.2 for a backend this package does not use); then this extra
    extras_require={'lite': ['mmcv-lite==2.1.0'],
                    'detection': ['mmcv==2.1.0', 'mmdet==3.3.0'],
                    'video': ['mmcv==2.1.0', 'mmaction2==1.2.0', 'importlib_metadata>=6'],
                    'onnx': ['onnx>=1.23', 'onnxruntime>=1.32'],
                    'mmdeploy': ['onnx>=1.23', 'onnxruntime>=1.32', 'aenum', 'multiprocess',
                                 'dill', 'prettytable', 'wcwidth']},
)
