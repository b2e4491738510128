/* svg.h — line charts and labelled scatter plots as SVG files, with no
   library: what examples/compare.c draws its results with.  Included after
   effattn.h (one cc command still builds the example).

   A chart is a set of series (x[], y[] and a name) on linear or log axes;
   svg_chart() picks "nice" tick values, draws the axes, a grid, each
   series as a polyline with markers (or markers alone with their names
   beside them, for a scatter), optional reference lines through a point
   with a given log-log slope (O(n), O(n²)), and a legend. */
#ifndef EFFATTN_SVG_H
#define EFFATTN_SVG_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SVG_MAX_SERIES 40
#define SVG_MAX_REFS 4

typedef struct svg_series {
    const char *name;
    const double *x, *y;
    int n;
} svg_series;

typedef struct svg_ref { /* a dashed line y = y0 · (x / x0)^slope */
    const char *name;
    double x0, y0, slope;
} svg_ref;

typedef struct svg_chart {
    const char *title, *xlabel, *ylabel;
    int logx, logy;
    int scatter;  /* markers with their series' names beside them, no lines */
    int n_series, n_refs;
    svg_series series[SVG_MAX_SERIES];
    svg_ref refs[SVG_MAX_REFS];
} svg_chart;

/* 24 colours that stay apart on white (Tableau 10, then darker and lighter kin) */
static const char *const svg_colours[24] = {
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f3b73", "#a34e00", "#8c1c13", "#2f6f6a", "#2d5d27", "#8a7200",
    "#6b3f66", "#c2185b", "#5d4037", "#616161", "#00838f", "#ef6c00", "#283593", "#558b2f"};

static inline void svg_text_escaped(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* Axis range [lo, hi] grown to tick values on a linear axis; on a log axis
   (values > 0) padded by a little and ticked at 1, 2 and 5 times powers of
   10 (svg_ticks). */
static inline void svg_axis(double *lo, double *hi, int logscale, double *step) {
    if (logscale) {
        if (*hi <= *lo) {
            *hi = *lo * 10.0;
            *lo /= 10.0;
        }
        *lo /= 1.2;
        *hi *= 1.2;
        *step = 0.0;
        return;
    }
    if (*hi <= *lo) {
        *hi = *lo + 1.0;
        *lo -= 1.0;
    }
    {
        double raw = (*hi - *lo) / 6.0, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
        *step = (r < 1.5 ? 1.0 : r < 3.0 ? 2.0 : r < 7.0 ? 5.0 : 10.0) * mag;
        *lo = floor(*lo / *step) * *step;
        *hi = ceil(*hi / *step) * *step;
    }
}

/* The tick values of an axis, at most max of them. */
static inline int svg_ticks(double lo, double hi, int logscale, double step, double *t, int max) {
    int n = 0;
    if (!logscale) {
        double v;
        for (v = lo; v <= hi + step * 1e-9 && n < max; v += step) t[n++] = fabs(v) < step * 1e-9 ? 0.0 : v;
        return n;
    } else {
        static const double mult[3] = {1.0, 2.0, 5.0};
        double dec;
        int k, every = log10(hi / lo) > 4.0 ? 3 : 1; /* many decades: powers of 10 only */
        for (dec = pow(10.0, floor(log10(lo))); dec <= hi && n < max; dec *= 10.0)
            for (k = 0; k < 3; k += every)
                if (dec * mult[k] >= lo && dec * mult[k] <= hi && n < max) t[n++] = dec * mult[k];
        return n;
    }
}

static inline double svg_map(double v, double lo, double hi, int logscale, double a, double b) {
    double t = logscale ? (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) : (v - lo) / (hi - lo);
    return a + t * (b - a);
}

/* Writes the chart to path; returns 0 when the file could not be written
   or no series has a point to draw. */
static inline int svg_chart_write(const char *path, const svg_chart *c) {
    const double W = 760, H = 480, L = 80, R = c->scatter ? 40 : 190, T = 40, B = 60;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY, xs, ys, v, ticks[64];
    int s, i, nt, any = 0;
    FILE *f;
    for (s = 0; s < c->n_series; s++)
        for (i = 0; i < c->series[s].n; i++) {
            double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (c->logx && x <= 0) || (c->logy && y <= 0)) continue;
            xlo = x < xlo ? x : xlo; xhi = x > xhi ? x : xhi;
            ylo = y < ylo ? y : ylo; yhi = y > yhi ? y : yhi;
            any = 1;
        }
    if (!any) return 0;
    svg_axis(&xlo, &xhi, c->logx, &xs);
    svg_axis(&ylo, &yhi, c->logy, &ys);
    f = fopen(path, "w");
    if (!f) return 0;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%g\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">", (L + W - R) / 2);
    svg_text_escaped(f, c->title);
    fputs("</text>\n", f);
    /* grid and tick labels */
    nt = svg_ticks(xlo, xhi, c->logx, xs, ticks, 64);
    for (i = 0; i < nt; i++) {
        double px = svg_map(v = ticks[i], xlo, xhi, c->logx, L, W - R);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#ddd\"/>"
                   "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n",
                px, T, px, H - B, px, H - B + 16, v);
    }
    nt = svg_ticks(ylo, yhi, c->logy, ys, ticks, 64);
    for (i = 0; i < nt; i++) {
        double py = svg_map(v = ticks[i], ylo, yhi, c->logy, H - B, T);
        fprintf(f, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                L, py, W - R, py, L - 6, py + 4, v);
    }
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n", L, T, W - R - L,
            H - B - T);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">", (L + W - R) / 2, H - 16);
    svg_text_escaped(f, c->xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(18 %g) rotate(-90)\" text-anchor=\"middle\">", (T + H - B) / 2);
    svg_text_escaped(f, c->ylabel);
    fputs("</text>\n", f);
    /* reference slopes, clipped to the plot by construction: drawn between
       the x range's ends and cut where they leave the y range */
    for (s = 0; s < c->n_refs; s++) {
        const svg_ref *r = &c->refs[s];
        int k;
        {
            double x0 = NAN, y0 = NAN, x1 = NAN, y1 = NAN;
            for (k = 0; k <= 64; k++) {
                double x = c->logx ? xlo * pow(xhi / xlo, k / 64.0) : xlo + (xhi - xlo) * k / 64.0;
                double y = r->y0 * pow(x / r->x0, r->slope);
                if (y < ylo || y > yhi) continue;
                if (isnan(x0)) { x0 = x; y0 = y; }
                x1 = x; y1 = y;
            }
            if (isnan(x0) || x1 == x0) continue;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\" text-anchor=\"end\">",
                    svg_map(x0, xlo, xhi, c->logx, L, W - R), svg_map(y0, ylo, yhi, c->logy, H - B, T),
                    svg_map(x1, xlo, xhi, c->logx, L, W - R), svg_map(y1, ylo, yhi, c->logy, H - B, T),
                    svg_map(x1, xlo, xhi, c->logx, L, W - R) - 4, svg_map(y1, ylo, yhi, c->logy, H - B, T) - 6);
            svg_text_escaped(f, r->name);
            fputs("</text>\n", f);
        }
    }
    /* series */
    for (s = 0; s < c->n_series; s++) {
        const svg_series *e = &c->series[s];
        const char *col = svg_colours[s % 24];
        if (!c->scatter && e->n > 1) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
            for (i = 0; i < e->n; i++)
                if (isfinite(e->x[i]) && isfinite(e->y[i]) && !(c->logx && e->x[i] <= 0) && !(c->logy && e->y[i] <= 0))
                    fprintf(f, "%.1f,%.1f ", svg_map(e->x[i], xlo, xhi, c->logx, L, W - R),
                            svg_map(e->y[i], ylo, yhi, c->logy, H - B, T));
            fputs("\"/>\n", f);
        }
        for (i = 0; i < e->n; i++) {
            double px, py;
            if (!isfinite(e->x[i]) || !isfinite(e->y[i]) || (c->logx && e->x[i] <= 0) || (c->logy && e->y[i] <= 0))
                continue;
            px = svg_map(e->x[i], xlo, xhi, c->logx, L, W - R);
            py = svg_map(e->y[i], ylo, yhi, c->logy, H - B, T);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>", px, py, col);
            svg_text_escaped(f, e->name);
            fprintf(f, ": %g, %g</title></circle>\n", e->x[i], e->y[i]);
            if (c->scatter) {
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">", px + 6, py - 5, col);
                svg_text_escaped(f, e->name);
                fputs("</text>\n", f);
            }
        }
        if (!c->scatter) { /* legend */
            double ly = T + 8 + 16.0 * s;
            fprintf(f, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                       "<text x=\"%g\" y=\"%.1f\">",
                    W - R + 12, ly, W - R + 32, ly, col, W - R + 38, ly + 4);
            svg_text_escaped(f, e->name);
            fputs("</text>\n", f);
        }
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0;
}

#endif
