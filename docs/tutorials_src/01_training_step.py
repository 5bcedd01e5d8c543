"""
# The training step, spelled out

test
"""
import numpy as np
import matplotlib.pyplot as plt
plt.plot([1,2,3])
plt.show()
print(np.arange(3))
