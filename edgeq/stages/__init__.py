"""Pipeline stages. Each imports TensorFlow inside its functions, never at module import."""
