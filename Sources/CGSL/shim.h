// The parts of GSL that `Reference` uses: matrices, vectors, BLAS and the error handler.
// Linking (-lgsl -lgslcblas -lm) comes from pkg-config's gsl.pc; see Package.swift for OpenBLAS.
#ifndef MINIDL_CGSL_SHIM_H
#define MINIDL_CGSL_SHIM_H
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>
#include <gsl/gsl_blas.h>
#endif
