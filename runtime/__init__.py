"""The model runtime: text normalisation and the numpy scorer over the shipped artifact (model/).

What the image needs of the model, and nothing of training: no scikit-learn, no corpora. The HTTP
service (``service``) and training (``training``) both build on it; it imports neither.
"""
