"""Prediction on new videos (``umbenet predict``): media -> raw model inputs -> emotion distribution.

Submodules are imported explicitly (importing this package loads nothing heavy):

    from umbenet_cli.inference.locate import find_checkpoint     # run / stage / checkpoint folder
    from umbenet_cli.inference.predict import Predictor
    predictor = Predictor.from_checkpoint(find_checkpoint("runs/mafw"), asr_model="base")
    predictions = predictor.predict([Path("clip.mp4")])          # list[VideoPrediction]
"""
